# Copyright (c) mmhand2p contributors. All rights reserved.
"""The file of the diffusion refiner's training pairs: (penetrating hands
``c``, plausible hands ``X0``), as written by
``tools/misc/make_penetration_pairs.py``.

File format (one ``.npz``, arrays over N pairs; camera frame, metres, each
hand in its own MANO model's space, flat-hand-relative; hand axis 0 = right,
1 = left)::

    x0_pose  (N, 2, 16, 3) float32   ground truth, axis-angle
    x0_betas (N, 2, 10)    float32
    x0_root  (N, 2, 3)     float32   wrist (MANO root joint) positions
    c_pose, c_betas, c_root           the penetrating condition, same shapes
    kind     (N,) uint8               0 = noise-until-penetration,
                                      1 = weak-estimator output
    level    (N,) int16               noise level that made it penetrate
                                      (-1 for estimator pairs)
    c_volume (N,) float32             PenVol of the condition, cm^3
    x0_volume (N,) float32            PenVol of the ground truth, cm^3
    source_index (N,) int64           index in the source dataset
    stats_count (), stats_sum (D,), stats_sqsum (D,) float64
                                      sums of encode_two_hands(X0) for the
                                      refiner's normalisation
    meta (str)                        JSON: source, tool arguments, schedule

Written by :func:`write_pairs` (the refiner's ``save_pairs`` adds the
normalisation sums), read by :func:`load_pairs`; the dataset
(:class:`mmhand2p.datasets.PenetrationPairsDataset`), the refiner and the
tools agree on it through this module.
"""
import json
import os.path as osp
from typing import Dict

import numpy as np

from mmhand2p.utils.fileio import atomic_write

__all__ = [
    'PAIR_KINDS', 'PAIR_FIELDS', 'PAIR_SHAPES', 'check_pair_arrays',
    'write_pairs', 'load_pairs'
]

PAIR_KINDS = ('noise', 'estimator')
PAIR_FIELDS = ('x0_pose', 'x0_betas', 'x0_root', 'c_pose', 'c_betas', 'c_root')
#: per-pair shape of each ``<prefix>_<name>`` field
PAIR_SHAPES = dict(pose=(2, 16, 3), betas=(2, 10), root=(2, 3))


def check_pair_arrays(arrays: Dict[str, np.ndarray],
                      caller: str = 'save_pairs') -> int:
    """The number of pairs N; a ``ValueError`` naming the field whose shape
    is not ``(N, ) + PAIR_SHAPES[...]``."""
    n = len(arrays['x0_pose'])
    for key in PAIR_FIELDS:
        shape = PAIR_SHAPES[key.split('_', 1)[1]]
        a = np.asarray(arrays[key])
        if a.shape != (n, ) + shape:
            raise ValueError(f'{caller}: {key} must be {(n, ) + shape}, '
                             f'got {a.shape}')
    return n


def write_pairs(path: str, arrays: Dict[str, np.ndarray], meta: dict,
                encoded: np.ndarray) -> None:
    """Write a pair file atomically (:func:`mmhand2p.utils.fileio.
    atomic_write`).

    Args:
        path (str): ``.npz`` output.
        arrays (dict): :data:`PAIR_FIELDS` plus ``kind``, ``level``,
            ``c_volume``, ``x0_volume``, ``source_index``.
        meta (dict): JSON-serialisable description.
        encoded (np.ndarray): ``(N, D)`` the ground truth in the refiner's
            sample space; its sums become ``stats_sum`` / ``stats_sqsum``.
    """
    n = check_pair_arrays(arrays)
    x = np.asarray(encoded)
    out = {k: np.asarray(v) for k, v in arrays.items()}
    out.update(
        stats_count=np.asarray(n, dtype=np.int64),
        stats_sum=x.sum(0),
        stats_sqsum=(x * x).sum(0),
        meta=np.asarray(json.dumps(meta)))
    with atomic_write(path, 'wb') as f:
        np.savez(f, **out)


def load_pairs(path: str) -> Dict[str, np.ndarray]:
    """Read a pair file (``meta`` decoded to a dict)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'pair file {path!r} does not exist: make it with '
            'tools/misc/make_penetration_pairs.py (docs/diffusion_refiner.md)')
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in PAIR_FIELDS + ('kind', ) if k not in z.files]
        if missing:
            raise KeyError(f'{path!r} is not a pair file: {missing} missing')
        out = {k: z[k] for k in z.files}
    out['meta'] = json.loads(str(out['meta'])) if 'meta' in out else {}
    return out
