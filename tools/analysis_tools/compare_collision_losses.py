# Copyright (c) mmhand2p contributors. All rights reserved.
"""Compare the collision criteria of ``HybridCollisionLoss`` as guidance.

For the first ``--num-pairs`` penetrating pairs of a pair file (file order,
no other selection; ``tools/misc/make_penetration_pairs.py`` writes only
pairs whose exact PenVol is at least its ``--min-volume``), each criterion
moves the left hand's translation by ``--steps`` gradient steps and the
exact PenVol (``mmhand2p.evaluation.functional.penetration_volume`` on the
capped meshes, cm^3) is measured before and after. Every step moves the
left hand ``--step-mm`` along the negative gradient of the criterion's loss
(normalised: the criteria have different scales, so one step size ``lambda``
would favour one of them; a zero gradient does not move). The criteria, all
on the same pair selection (nearest vertices closer than ``d_threshold`` with
opposing normals):

* ``depth_gmof`` - the default: GMoF of each pair's penetration depth;
* ``eq3_printed`` - A2P's Eq. (3) as printed, ``d^2 / (d^2 - rho)`` of the
  pair distance (``--eq3-rho``, m^2; default ``d_threshold^2``);
* ``pair_gmof`` - a standard GMoF of the pair distance (``--rho``).

Example (the table of ``docs/diffusion_refiner.md``)::

    python tools/analysis_tools/compare_collision_losses.py \\
        data/synthetic_interhand/penetration_pairs/val_noise.npz \\
        --num-pairs 8 --steps 15
"""
import argparse
import json
import math
import sys

import numpy as np
import torch

CRITERIA = ('depth_gmof', 'eq3_printed', 'pair_gmof')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('pairs', help='pair file (.npz of make_penetration_pairs)')
    p.add_argument('--num-pairs', type=int, default=8)
    p.add_argument('--steps', type=int, default=15)
    p.add_argument(
        '--step-mm',
        type=float,
        default=1.0,
        help='length of each step of the left hand (mm, default 1)')
    p.add_argument('--criteria', nargs='+', default=list(CRITERIA))
    p.add_argument(
        '--d-threshold',
        type=float,
        default=0.005,
        help='pair distance bound, metres (default 0.005)')
    p.add_argument(
        '--rho',
        type=float,
        default=0.01,
        help='GMoF scale of depth_gmof and pair_gmof, metres (default 0.01)')
    p.add_argument(
        '--eq3-rho',
        type=float,
        default=None,
        help='rho of eq3_printed, m^2 (default d_threshold^2)')
    p.add_argument('--mano-model-path', default=None)
    p.add_argument('--out', default=None, help='write the table as JSON')
    return p.parse_args(argv)


class PenVol:
    """Exact PenVol (cm^3) of ``(B, 2, V, 3)`` MANO hands (capped)."""

    def __init__(self, faces: np.ndarray) -> None:
        from mmhand2p.evaluation.functional import closed_hand_faces
        self.closed = [closed_hand_faces(faces[h]) for h in range(2)]

    def __call__(self, vertices: torch.Tensor) -> np.ndarray:
        from mmhand2p.evaluation.functional import penetration_volume
        v = vertices.detach().double().cpu().numpy()
        caps = [
            np.concatenate([v[:, h]] + [
                v[:, h][:, loop].mean(1, keepdims=True)
                for loop in self.closed[h][1]
            ], 1) for h in range(2)
        ]
        return penetration_volume(caps[0], self.closed[0][0], caps[1],
                                  self.closed[1][0])[0] * 1e6


def load_hands(path: str, num: int, mano_model_path=None):
    """The first ``num`` pairs' penetrating hands ``c``: vertices ``(N, 2,
    V, 3)`` (placed by their wrists), faces, source indices."""
    from mmhand2p.conventions.penetration_pairs import load_pairs
    from mmhand2p.models.body_models import MANOLayer
    pairs = load_pairs(path)
    idx = np.arange(min(num, len(pairs['c_pose'])))
    layer = MANOLayer(mano_model_path)
    pose, betas, root = (torch.as_tensor(pairs[f'c_{k}'][idx]).float()
                         for k in ('pose', 'betas', 'root'))
    with torch.no_grad():
        out = layer(pose=pose.reshape(len(idx), 2, 16, 3), betas=betas)
        verts = out.vertices + (root - out.joints[:, :, 0])[:, :, None]
    src = pairs.get('source_index', idx)
    return verts, layer.faces, np.asarray(src)[idx]


def guide(verts: torch.Tensor, faces, loss, steps: int,
          step: float) -> torch.Tensor:
    """``steps`` normalised gradient steps of length ``step`` (metres) on
    the left hand's translation; returns the moved vertices."""
    t = verts.new_zeros(len(verts), 3)
    for _ in range(steps):
        t = t.detach().requires_grad_(True)
        v = torch.cat([verts[:, :1], verts[:, 1:] + t[:, None, None]], 1)
        value = loss(v, faces)
        (grad, ) = torch.autograd.grad(value, t)
        norm = grad.norm(dim=-1, keepdim=True)
        direction = torch.where(norm > 0, grad / norm.clamp(min=1e-30),
                                torch.zeros_like(grad))
        t = t.detach() - step * direction
    with torch.no_grad():
        return torch.cat([verts[:, :1], verts[:, 1:] + t[:, None, None]], 1)


def compare(args) -> dict:
    """The per-pair table: ``{'before': [...], '<criterion>': [...],
    'source_index': [...], 'settings': {...}}`` (PenVol in cm^3)."""
    from mmhand2p.registry import MODELS
    from mmhand2p.utils import register_all_modules
    register_all_modules()
    verts, faces, src = load_hands(args.pairs, args.num_pairs,
                                   args.mano_model_path)
    penvol = PenVol(faces.numpy())
    eq3_rho = args.eq3_rho if args.eq3_rho is not None else \
        args.d_threshold**2
    table = dict(
        source_index=[int(s) for s in src],
        before=[float(x) for x in penvol(verts)])
    for crit in args.criteria:
        loss = MODELS.build(
            dict(
                type='HybridCollisionLoss',
                d_threshold=args.d_threshold,
                rho=eq3_rho if crit == 'eq3_printed' else args.rho,
                criterion=crit))
        moved = guide(verts.double(), faces, loss, args.steps,
                      args.step_mm / 1000)
        table[crit] = [float(x) for x in penvol(moved)]
    table['settings'] = dict(
        pairs=args.pairs,
        num_pairs=len(src),
        steps=args.steps,
        step_mm=args.step_mm,
        d_threshold=args.d_threshold,
        rho=args.rho,
        eq3_rho=eq3_rho)
    return table


def format_table(table: dict, criteria) -> str:
    head = '| pair (source index) | before | ' + ' | '.join(criteria) + ' |'
    lines = [head, '|' + ' --- |' * (2 + len(criteria))]
    for k, src in enumerate(table['source_index']):
        cells = [f'{table["before"][k]:.2f}'] + [
            f'{table[c][k]:.2f}' + (' (worse)' if table[c][k] >
                                    table['before'][k] else '')
            for c in criteria
        ]
        lines.append(f'| {k} ({src}) | ' + ' | '.join(cells) + ' |')
    means = [np.mean(table['before'])] + [np.mean(table[c]) for c in criteria]
    lines.append('| mean | ' + ' | '.join(f'{m:.2f}' for m in means) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    bad = [c for c in args.criteria if c not in CRITERIA]
    if bad:
        print(f'unknown criteria {bad}; choose from {CRITERIA}',
              file=sys.stderr)
        return 2
    table = compare(args)
    print(f'PenVol (cm^3) of the first {len(table["before"])} pairs of '
          f'{args.pairs}: before and after {args.steps} steps of '
          f'{args.step_mm} mm on the left hand\'s translation')
    print(format_table(table, args.criteria))
    if not all(
            math.isfinite(x) for c in ['before'] + list(args.criteria)
            for x in table[c]):
        print('non-finite PenVol', file=sys.stderr)
        return 1
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
