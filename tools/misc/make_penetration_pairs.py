#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Make training pairs (penetrating hands ``c``, ground truth ``X0``) for the
A2P diffusion refiner, the two ways of the paper
(``docs/diffusion_refiner.md``).

1. ``noise``: ground-truth MANO hands of any dataset that
   ``InterHand26MDataset`` reads (InterHand2.6M, Re:InterHand, the synthetic
   set) with noise added until the hands penetrate::

       python tools/misc/make_penetration_pairs.py noise \\
           --data-root data/synthetic_interhand --split train \\
           --out data/synthetic_interhand/penetration_pairs/train_noise.npz

   The schedule: levels ``k = 1 .. K`` (``--levels``, default 8) with scale
   ``s = k / K``; at each level, ``--tries`` fresh draws of

   * global orientation of each hand: ``R <- exp(N(0, (s sigma_g)^2)) R``,
     ``sigma_g = --sigma-orient`` (0.25 rad);
   * finger pose: ``theta += N(0, (s sigma_f)^2)`` per axis-angle entry,
     ``sigma_f = --sigma-fingers`` (0.2 rad);
   * shape: ``beta += N(0, (s sigma_b)^2)``, ``sigma_b = --sigma-betas``
     (0.5);
   * wrists: each wrist moves towards the other by ``s * pull / 2`` of
     their distance (``--pull`` 0.6) plus ``N(0, (s sigma_t)^2)`` per axis
     (``sigma_t = --sigma-transl``, 0.01 m).

   A sample's pair is the first draw whose penetration volume (exact,
   manifold3d, capped meshes) lies in ``[--min-volume, --max-volume]`` cm^3
   (0.05, 10); samples that never get there are dropped (counted in the
   summary). The generator is seeded per sample (``--seed``, sample index),
   so the output does not depend on ``--workers`` or chunking.

2. ``estimator``: outputs of a weaker stage-1 model that penetrate, with the
   ground truth of the same crop::

       python tools/misc/make_penetration_pairs.py estimator CONFIG CKPT \\
           --split train --out .../train_estimator.npz

   The model runs on the config's ``test_dataloader`` dataset (split and
   data root overridable; interacting frames with MANO for both hands)
   without its refiner; predictions whose PenVol exceeds ``--min-volume``
   become ``c``, the ground truth of the same crop (camera frame of the
   network input, a mirrored left hand mapped back) ``X0``.

Only interacting frames with MANO for both hands are used. The output is
the ``.npz`` of ``mmhand2p.conventions.penetration_pairs`` (with the
normalisation sums the refiner's ``stats_file`` reads).
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np

try:
    import mmhand2p  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Make (penetrating, ground-truth) two-hand pairs for '
        'the A2P diffusion refiner')
    sub = parser.add_subparsers(dest='mode', required=True)

    def common(p):
        p.add_argument('--out', required=True, help='output .npz')
        p.add_argument(
            '--min-volume',
            type=float,
            default=0.05,
            help='PenVol (cm^3) above which hands count as penetrating '
            '(default 0.05)')
        p.add_argument(
            '--max-samples',
            type=int,
            default=None,
            help='use at most this many dataset samples')
        p.add_argument(
            '--stride', type=int, default=1, help='use every N-th sample')
        p.add_argument(
            '--workers',
            type=int,
            default=0,
            help='processes for the penetration volumes (0 = here)')
        p.add_argument(
            '--mano-model-path',
            default=None,
            help='MANO folder (default: the bundled hand model; must be the '
            "dataset's)")

    noise = sub.add_parser(
        'noise', help='noise ground truth until the '
        'hands penetrate')
    common(noise)
    noise.add_argument('--data-root', required=True)
    noise.add_argument('--split', default='train')
    noise.add_argument(
        '--annot-flat-hand-mean',
        action='store_true',
        help='the MANO annotations are flat-hand relative (the synthetic set '
        'is not: it uses the NeuralAnnot convention)')
    noise.add_argument('--levels', type=int, default=8)
    noise.add_argument('--tries', type=int, default=2)
    noise.add_argument('--sigma-orient', type=float, default=0.25)
    noise.add_argument('--sigma-fingers', type=float, default=0.2)
    noise.add_argument('--sigma-betas', type=float, default=0.5)
    noise.add_argument('--sigma-transl', type=float, default=0.01)
    noise.add_argument('--pull', type=float, default=0.6)
    noise.add_argument(
        '--max-volume',
        type=float,
        default=10.0,
        help='draws penetrating more (cm^3) are rejected (default 10)')
    noise.add_argument('--seed', type=int, default=0)
    noise.add_argument('--chunk', type=int, default=256)

    est = sub.add_parser(
        'estimator', help='penetrating outputs of a '
        'stage-1 checkpoint')
    common(est)
    est.add_argument('config', help='stage-1 config')
    est.add_argument('checkpoint', help='stage-1 checkpoint')
    est.add_argument('--split', default=None, help='override the split')
    est.add_argument('--data-root', default=None)
    est.add_argument('--batch-size', type=int, default=16)
    est.add_argument(
        '--num-workers', type=int, default=0, help='dataloader workers')
    est.add_argument('--device', default='cpu')
    est.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        help='config overrides key=value (mmengine DictAction syntax)')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
class PenVolChecker:
    """Exact penetration volumes (cm^3) of batches of two-hand meshes."""

    def __init__(self, faces: np.ndarray, workers: int = 0) -> None:
        from mmhand2p.evaluation.functional.penetration import (
            VolumeWorkerPool, closed_hand_faces)
        self.closed = [closed_hand_faces(faces[h]) for h in range(2)]
        self.pool = VolumeWorkerPool(
            self.closed[0][0], self.closed[1][0], num_workers=workers)

    def __call__(self, vertices) -> np.ndarray:
        """``(B, 2, V, 3)`` metres -> ``(B,)`` cm^3."""
        v = np.asarray(vertices, dtype=np.float64)
        if len(v) == 0:
            return np.zeros(0)
        caps = []
        for h, (_, loops) in enumerate(self.closed):
            centres = [
                v[:, h][:, loop].mean(1, keepdims=True) for loop in loops
            ]
            caps.append(np.concatenate([v[:, h]] + centres, axis=1))
        vol, _ = self.pool(caps[0], caps[1])
        return vol * 1e6

    def close(self) -> None:
        self.pool.close()


def mano_hands(layer, pose, betas, root):
    """Vertices ``(B, 2, V, 3)`` of hands placed by their wrists."""
    import torch
    with torch.no_grad():
        out = layer(pose=pose, betas=betas)
        shift = root - out.joints[:, :, 0]
        return out.vertices + shift[:, :, None]


def mano_roots(layer, pose, betas, transl):
    """Wrist positions ``(B, 2, 3)`` of MANO parameters."""
    import torch
    with torch.no_grad():
        return layer(pose=pose, betas=betas, transl=transl).joints[:, :, 0]


def perturb(rng: np.random.Generator, pose, betas, root, s: float, args):
    """One draw of the noise schedule at scale ``s`` (numpy, one sample)."""
    from scipy.spatial.transform import Rotation
    pose = pose.copy()
    for h in range(2):
        d = Rotation.from_rotvec(rng.normal(0, s * args.sigma_orient, 3))
        pose[h, 0] = (d * Rotation.from_rotvec(pose[h, 0])).as_rotvec()
    pose[:, 1:] += rng.normal(0, s * args.sigma_fingers, pose[:, 1:].shape)
    betas = betas + rng.normal(0, s * args.sigma_betas, betas.shape)
    rel = root[1] - root[0]
    pull = s * args.pull / 2 * rel
    root = root + np.stack([pull, -pull]) + rng.normal(
        0, s * args.sigma_transl, root.shape)
    return pose, betas, root


def load_interacting(args):
    """Ground truth of the interacting samples with MANO for both hands."""
    from mmhand2p.datasets import InterHand26MDataset
    ds = InterHand26MDataset(
        data_root=args.data_root,
        split=args.split,
        hand_type='interacting',
        require_mano=True,
        mano_model_path=args.mano_model_path,
        annot_flat_hand_mean=args.annot_flat_hand_mean,
        pipeline=[],
        test_mode=True)
    idx = np.arange(0, len(ds), max(1, args.stride))
    if args.max_samples is not None:
        idx = idx[:args.max_samples]
    pose, betas, transl, keep = [], [], [], []
    for i in idx:
        info = ds.get_data_info(int(i))
        if not np.asarray(info['mano_valid']).all():
            continue
        pose.append(info['mano_pose'])
        betas.append(info['mano_betas'])
        transl.append(info['mano_transl'])
        keep.append(i)
    return (np.asarray(pose, np.float32).reshape(-1, 2, 16, 3),
            np.asarray(betas, np.float32).reshape(-1, 2, 10),
            np.asarray(transl,
                       np.float32).reshape(-1, 2,
                                           3), np.asarray(keep, np.int64))


def make_noise_pairs(args) -> dict:
    import torch

    from mmhand2p.models.body_models import MANOLayer
    layer = MANOLayer(args.mano_model_path)
    pose, betas, transl, src = load_interacting(args)
    n = len(pose)
    print(
        f'{n} interacting samples with MANO for both hands in '
        f'{args.data_root} ({args.split})',
        flush=True)
    checker = PenVolChecker(layer.faces.numpy(), args.workers)
    out = {
        k: []
        for k in ('x0_pose', 'x0_betas', 'x0_root', 'c_pose', 'c_betas',
                  'c_root', 'level', 'c_volume', 'x0_volume', 'source_index')
    }
    t = torch.as_tensor
    levels = np.zeros(args.levels + 1, dtype=np.int64)
    try:
        for s0 in range(0, n, args.chunk):
            sl = slice(s0, s0 + args.chunk)
            p0, b0 = pose[sl], betas[sl]
            r0 = mano_roots(layer, t(p0), t(b0), t(transl[sl])).numpy()
            v0 = mano_hands(layer, t(p0), t(b0), t(r0)).numpy()
            vol0 = checker(v0)
            m = len(p0)
            rngs = [
                np.random.default_rng([args.seed, int(src[s0 + i])])
                for i in range(m)
            ]
            done = np.zeros(m, dtype=bool)
            cp, cb, cr = p0.copy(), b0.copy(), r0.copy()
            lvl = np.full(m, -1, dtype=np.int16)
            cvol = np.zeros(m, dtype=np.float32)
            for k in range(1, args.levels + 1):
                for _ in range(args.tries):
                    todo = np.flatnonzero(~done)
                    if len(todo) == 0:
                        break
                    draws = [
                        perturb(rngs[i], p0[i], b0[i], r0[i], k / args.levels,
                                args) for i in todo
                    ]
                    dp = np.stack([d[0] for d in draws]).astype(np.float32)
                    db = np.stack([d[1] for d in draws]).astype(np.float32)
                    dr = np.stack([d[2] for d in draws]).astype(np.float32)
                    vol = checker(
                        mano_hands(layer, t(dp), t(db), t(dr)).numpy())
                    ok = (vol >= args.min_volume) & (vol <= args.max_volume)
                    sel = todo[ok]
                    cp[sel], cb[sel], cr[sel] = dp[ok], db[ok], dr[ok]
                    lvl[sel], cvol[sel] = k, vol[ok]
                    done[sel] = True
            keep = np.flatnonzero(done)
            for key, val in (('x0_pose', p0), ('x0_betas', b0),
                             ('x0_root', r0), ('c_pose', cp), ('c_betas', cb),
                             ('c_root', cr), ('level', lvl), ('c_volume',
                                                              cvol),
                             ('x0_volume', vol0), ('source_index', src[sl])):
                out[key].append(np.asarray(val)[keep])
            levels += np.bincount(lvl[keep], minlength=args.levels + 1)
            print(
                f'[{min(s0 + args.chunk, n)}/{n}] pairs so far: '
                f'{sum(len(x) for x in out["level"])}',
                flush=True)
    finally:
        checker.close()
    arrays = {
        k: np.concatenate(v) if v else np.zeros(0)
        for k, v in out.items()
    }
    num = len(arrays['level'])
    arrays['kind'] = np.zeros(num, dtype=np.uint8)
    summary = dict(
        samples=n,
        pairs=num,
        dropped=n - num,
        per_level={str(k): int(levels[k])
                   for k in range(1, args.levels + 1)},
        mean_c_volume_cm3=float(arrays['c_volume'].mean()) if num else 0.0,
        gt_penetrating=int((arrays['x0_volume'] >= args.min_volume).sum()))
    meta = dict(
        kind='noise',
        data_root=osp.abspath(args.data_root),
        split=args.split,
        schedule=dict(
            levels=args.levels,
            tries=args.tries,
            sigma_orient=args.sigma_orient,
            sigma_fingers=args.sigma_fingers,
            sigma_betas=args.sigma_betas,
            sigma_transl=args.sigma_transl,
            pull=args.pull,
            min_volume=args.min_volume,
            max_volume=args.max_volume,
            seed=args.seed),
        summary=summary)
    return arrays, meta


def make_estimator_pairs(args) -> tuple:
    """Penetrating predictions of a stage-1 checkpoint (see the module
    docstring)."""
    import torch
    from mmengine.config import Config, DictAction
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint
    from torch.utils.data import DataLoader

    from mmhand2p.datasets.transforms import right_as_left
    from mmhand2p.engine.checkpoint import register_checkpoint_safe_globals
    from mmhand2p.models.body_models import MANOLayer
    from mmhand2p.registry import DATASETS, MODELS
    from mmhand2p.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    register_checkpoint_safe_globals()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o'] + args.cfg_options).o)
    model_cfg = cfg.model.copy()
    model_cfg.pop('refiner', None)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device).eval()

    ds_cfg = cfg.test_dataloader.dataset.copy()
    if args.split is not None:
        ds_cfg.split = args.split
    if args.data_root is not None:
        ds_cfg.data_root = args.data_root
    ds_cfg.update(hand_type='interacting', require_mano=True, test_mode=True)
    dataset = DATASETS.build(ds_cfg)
    idx = np.arange(0, len(dataset), max(1, args.stride))
    if args.max_samples is not None:
        idx = idx[:args.max_samples]
    loader = DataLoader(
        torch.utils.data.Subset(dataset, idx.tolist()),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=pseudo_collate)
    layer = MANOLayer(args.mano_model_path)
    checker = PenVolChecker(layer.faces.numpy(), args.workers)
    keys = ('x0_pose', 'x0_betas', 'x0_root', 'c_pose', 'c_betas', 'c_root',
            'c_volume', 'x0_volume', 'source_index')
    out = {k: [] for k in keys}
    seen = 0
    try:
        for batch in loader:
            with torch.no_grad():
                samples = model.test_step(batch)
            rows = []
            for ds in samples:
                gt, pred = ds.gt_hands, ds.pred_hands
                if 'mano_valid' not in gt or not bool(gt.mano_valid.all()):
                    continue
                gt_pose, gt_transl = gt.mano_pose, gt.mano_transl
                if ds.metainfo.get('flip_left', False):
                    # GenerateTwoHandTargets(left_as_right=True) mirrored the
                    # left hand's ground truth: back to its own model
                    gt_pose, gt_transl, _ = right_as_left(gt_pose, gt_transl)
                gt = dict(
                    mano_pose=gt_pose,
                    mano_betas=gt.mano_betas,
                    mano_transl=gt_transl)
                rows.append((ds, gt, pred))
            seen += len(samples)
            if not rows:
                continue

            def st(group, name):
                return torch.stack([
                    torch.as_tensor(r[group][name]).float().cpu() for r in rows
                ])

            c_pose, c_betas = st(2, 'mano_pose'), st(2, 'mano_betas')[..., :10]
            c_root = st(2, 'joints_3d')[:, :, 0]
            g_pose, g_betas = st(1, 'mano_pose'), st(1, 'mano_betas')
            g_root = mano_roots(layer, g_pose, g_betas, st(1, 'mano_transl'))
            cvol = checker(mano_hands(layer, c_pose, c_betas, c_root).numpy())
            keep = np.flatnonzero(cvol >= args.min_volume)
            if len(keep) == 0:
                continue
            gvol = checker(
                mano_hands(layer, g_pose[keep], g_betas[keep],
                           g_root[keep]).numpy())
            src = np.asarray(
                [r[0].metainfo.get('sample_idx', -1) for r in rows])
            for key, val in (('x0_pose', g_pose), ('x0_betas', g_betas),
                             ('x0_root', g_root), ('c_pose', c_pose),
                             ('c_betas', c_betas), ('c_root', c_root)):
                out[key].append(val.numpy()[keep])
            out['c_volume'].append(cvol[keep])
            out['x0_volume'].append(gvol)
            out['source_index'].append(src[keep])
            print(
                f'[{seen}/{len(idx)}] penetrating predictions so far: '
                f'{sum(len(x) for x in out["c_volume"])}',
                flush=True)
    finally:
        checker.close()
    shapes = dict(pose=(0, 2, 16, 3), betas=(0, 2, 10), root=(0, 2, 3))
    arrays = {}
    for k in keys:
        if out[k]:
            arrays[k] = np.concatenate(out[k])
        else:
            tail = k.split('_', 1)[-1]
            arrays[k] = np.zeros(shapes.get(tail, (0, )), np.float32)
    num = len(arrays['c_volume'])
    arrays['kind'] = np.ones(num, dtype=np.uint8)
    arrays['level'] = np.full(num, -1, dtype=np.int16)
    meta = dict(
        kind='estimator',
        config=osp.abspath(args.config),
        checkpoint=osp.abspath(args.checkpoint),
        split=ds_cfg.get('split'),
        data_root=ds_cfg.get('data_root'),
        min_volume=args.min_volume,
        summary=dict(samples=seen, pairs=num))
    return arrays, meta


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmhand2p.models.refiners.pairs import save_pairs
    t0 = time.time()
    if args.mode == 'noise':
        arrays, meta = make_noise_pairs(args)
    else:
        arrays, meta = make_estimator_pairs(args)
    save_pairs(args.out, arrays, meta)
    print(f'{len(arrays["kind"])} pairs -> {args.out} in '
          f'{time.time() - t0:.1f} s; {meta["summary"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
