# Copyright (c) mmhand2p contributors. All rights reserved.
"""Generate the bundled hand model (MANO format, NOT the real MANO model).

Writes ``MANO_RIGHT.npz`` and ``MANO_LEFT.npz`` made by
:mod:`mmhand2p.synthetic.hand_model` and prints a summary::

    python tools/misc/build_hand_model.py [--out-dir mmhand2p/assets] \
        [--seed 0] [--render-docs docs/images]

With ``--render-docs DIR`` it also renders the documentation images
(``hand_model_rest.png``, ``hand_model_fist.png``, ``hand_model_spread.png``)
with the CPU renderer of :mod:`mmhand2p.visualization`.
"""
import argparse
import os
import os.path as osp
import sys
import time

import numpy as np

try:
    import mmhand2p  # noqa: F401
except ImportError:  # not installed: run from a checkout
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmhand2p.synthetic import hand_model as ph  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--out-dir',
        default=osp.join(REPO, 'mmhand2p', 'assets'),
        help='folder for MANO_RIGHT.npz / MANO_LEFT.npz')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the pose prior behind the PCA basis')
    parser.add_argument(
        '--render-docs',
        metavar='DIR',
        default=None,
        help='also render the documentation images into DIR '
        '(e.g. docs/images)')
    parser.add_argument(
        '--size',
        type=int,
        default=512,
        help='size of the rendered images in pixels')
    return parser.parse_args(argv)


def summary(name, model, path):
    v = model['v_template']
    f = model['f'].astype(np.int64)
    edges, counts = ph.edge_face_counts(f)
    loops = ph.boundary_loops(f)
    vol = ph.signed_volume(*ph.cap_boundary_loops(v, f))
    j = model['J']
    tips = {k: v[i] for k, i in ph.FINGERTIP_VERTEX_IDS.items()}
    length = np.linalg.norm(tips['middle'] - j[0])
    # palm width across the knuckles (between the index and little MCPs'
    # level and 2 cm towards the wrist), thumb excluded
    thumb = model['weights'][:, 13:16].sum(1) >= 0.5
    towards_wrist = (v[:, 0] - j[4, 0]) * np.sign(j[0, 0] - j[4, 0])
    band = (towards_wrist > 0) & (towards_wrist < 0.02)
    width = np.ptp(v[band & ~thumb, 2])
    print(f'{name}: {path} ({osp.getsize(path) / 1e6:.2f} MB)')
    print(f'  vertices {len(v)}, faces {len(f)}, edges {len(edges)} '
          f'(max {counts.max()} faces per edge), Euler characteristic '
          f'{len(v) - len(edges) + len(f)}, boundary loops '
          f'{[len(lp) for lp in loops]}')
    print(f'  capped volume {vol * 1e6:.1f} cm^3, wrist joint to middle '
          f'fingertip {length * 100:.1f} cm, width at the knuckles '
          f'{width * 100:.1f} cm')


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.time()
    right = ph.build_hand_model(seed=args.seed, is_rhand=True)
    left = ph.mirror_hand_model(right)
    dt = time.time() - t0
    for name, model in (('MANO_RIGHT', right), ('MANO_LEFT', left)):
        path = osp.join(args.out_dir, f'{name}.npz')
        np.savez_compressed(path, **model)
        summary(name, model, path)
    print(f'generated in {dt:.1f} s (seed {args.seed}); this is a '
          'procedurally generated hand model, NOT the real MANO model')
    if args.render_docs:
        from render_hand_model import render_docs  # noqa: E402
        render_docs(args.out_dir, args.render_docs, size=args.size)


if __name__ == '__main__':
    main()
