# Copyright (c) mmhand2p contributors. All rights reserved.
"""Render the bundled hand model for the documentation (docs/images).

    python tools/misc/render_hand_model.py [--model-dir mmhand2p/assets] \
        [--out-dir docs/images] [--size 512]

Writes ``hand_model_rest.png`` (right hand: back, palm and thumb side; both
hands), ``hand_model_fist.png`` and ``hand_model_spread.png`` using the numpy
forward pass of :mod:`mmhand2p.synthetic.hand_model` and the
CPU renderer of :mod:`mmhand2p.visualization`.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np

try:
    import mmhand2p  # noqa: F401
except ImportError:  # not installed: run from a checkout
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmhand2p.synthetic import hand_model as ph  # noqa: E402
from mmhand2p.visualization import render_meshes  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BACKGROUND = (245, 245, 245)


def look_at(view_dir, up):
    """Rotation (rows = camera x, y, z axes) looking along ``view_dir``."""
    z = np.asarray(view_dir, np.float64)
    z = z / np.linalg.norm(z)
    y = -np.asarray(up, np.float64)
    y = y - z * (y @ z)
    y = y / np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z])


def render_view(meshes,
                faces,
                view_dir,
                up,
                size,
                colors=None,
                dist=0.6,
                margin=0.08):
    """Render meshes (model frame) seen along ``view_dir``, framed to fit."""
    rot = look_at(view_dir, up)
    pts = np.concatenate(meshes)
    centre = 0.5 * (pts.max(0) + pts.min(0))
    cams = [(m - centre) @ rot.T + np.array([0.0, 0.0, dist]) for m in meshes]
    allc = np.concatenate(cams)
    proj = allc[:, :2] / allc[:, 2:]
    half = np.abs(proj).max()
    f = (0.5 - margin) * size / half
    c = (size - 1) / 2.0
    return render_meshes(
        cams,
        faces, (f, f, c, c), (size, size),
        colors=colors,
        background=BACKGROUND,
        supersample=3).image


def pose_vector(flex, abd=None, twist=None, orient=None):
    flex = np.asarray(flex, np.float64)
    abd = np.zeros(15) if abd is None else np.asarray(abd, np.float64)
    twist = np.zeros(15) if twist is None else np.asarray(twist, np.float64)
    hand = ph.finger_pose_from_angles(flex, abd, twist)
    glob = np.zeros(3) if orient is None else np.asarray(orient)
    return np.concatenate([glob, hand])


def _per_joint(finger_vals, thumb_vals):
    out = np.zeros(15)
    for name, ids in ph.FINGER_JOINTS.items():
        vals = thumb_vals if name == 'thumb' else finger_vals
        for k, j in enumerate(ids):
            out[j - 1] = vals[k]
    return out


#: a closed fist: flexion of MCP / PIP / DIP (thumb CMC / MCP / IP)
FIST = dict(
    flex=_per_joint((1.25, 1.45, 0.75), (0.55, 0.55, 0.80)),
    abd=_per_joint((0.0, 0.0, 0.0), (-0.35, 0.0, 0.0)),
    twist=_per_joint((0.0, 0.0, 0.0), (0.45, 0.0, 0.0)))


def spread_pose():
    abd = np.zeros(15)
    for name, a in (('index', 0.28), ('middle', 0.05), ('ring', -0.22),
                    ('little', -0.42), ('thumb', 0.35)):
        abd[ph.FINGER_JOINTS[name][0] - 1] = a
    flex = _per_joint((-0.12, 0.05, 0.05), (-0.1, -0.1, -0.1))
    return dict(flex=flex, abd=abd)


def tile(images, cols):
    rows = [
        np.concatenate(images[i:i + cols], axis=1)
        for i in range(0, len(images), cols)
    ]
    return np.concatenate(rows, axis=0)


def render_docs(model_dir, out_dir, size=512):
    """Render the three documentation images into ``out_dir``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    right = dict(np.load(osp.join(model_dir, 'MANO_RIGHT.npz')))
    left = dict(np.load(osp.join(model_dir, 'MANO_LEFT.npz')))
    fr = right['f'].astype(np.int64)
    fl = left['f'].astype(np.int64)
    skin = [(0.93, 0.72, 0.60)]
    # rest pose: back, palm, thumb side, and both hands
    vr, _ = ph.lbs_numpy(right, np.zeros(48))
    vl, _ = ph.lbs_numpy(left, np.zeros(48))
    panels = [
        render_view([vr], fr, (0, -1, 0), (-1, 0, 0), size, skin),
        render_view([vr], fr, (0, 1, 0), (-1, 0, 0), size, skin),
        render_view([vr], fr, (0.15, 0.25, -1), (-1, 0, 0), size, skin),
        # both hands from the back, thumbs inwards (left hand turned 180
        # degrees about y so that its fingers point the same way)
        render_view([vl * [-1, 1, -1] + [0, 0, 0.075], vr - [0, 0, 0.075]],
                    [fl, fr], (0, -1, 0), (-1, 0, 0), size,
                    [(0.58, 0.72, 0.93), skin[0]]),
    ]
    plt.imsave(osp.join(out_dir, 'hand_model_rest.png'), tile(panels, 4))
    # fist
    vf, _ = ph.lbs_numpy(right, pose_vector(**FIST))
    panels = [
        render_view([vf], fr, (-0.4, 0.8, -0.45), (-1, 0, 0), size, skin),
        render_view([vf], fr, (0.2, -0.9, -0.4), (-1, 0, 0), size, skin),
        render_view([vf], fr, (0.75, 0.35, -0.55), (0, 1, 0), size, skin),
    ]
    plt.imsave(osp.join(out_dir, 'hand_model_fist.png'), tile(panels, 3))
    # spread fingers
    vs, _ = ph.lbs_numpy(right, pose_vector(**spread_pose()))
    panels = [
        render_view([vs], fr, (0, -1, 0), (-1, 0, 0), size, skin),
        render_view([vs], fr, (0.3, 0.9, -0.3), (-1, 0, 0), size, skin),
        render_view([vs], fr, (-0.5, -0.6, -0.6), (-1, 0, 0), size, skin),
    ]
    plt.imsave(osp.join(out_dir, 'hand_model_spread.png'), tile(panels, 3))
    for name in ('rest', 'fist', 'spread'):
        print(f'wrote {osp.join(out_dir, f"hand_model_{name}.png")}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--model-dir', default=osp.join(REPO, 'mmhand2p', 'assets'))
    parser.add_argument('--out-dir', default=osp.join(REPO, 'docs', 'images'))
    parser.add_argument('--size', type=int, default=512)
    args = parser.parse_args(argv)
    render_docs(args.model_dir, args.out_dir, args.size)


if __name__ == '__main__':
    main()
