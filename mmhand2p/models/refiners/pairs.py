# Copyright (c) mmhand2p contributors. All rights reserved.
"""The refiner's side of its training-pair files: :func:`save_pairs` writes
them with the normalisation sums of :func:`encode_two_hands`.

The file format and :func:`load_pairs` live in
:mod:`mmhand2p.conventions.penetration_pairs` (re-exported here); the
dataset is :class:`mmhand2p.datasets.PenetrationPairsDataset` and the metric
:class:`mmhand2p.evaluation.RefinerPairMetric` (``type=`` names unchanged).
"""
from typing import Dict

import numpy as np
import torch

from mmhand2p.conventions.penetration_pairs import (PAIR_FIELDS, PAIR_KINDS,
                                                    check_pair_arrays,
                                                    load_pairs, write_pairs)

__all__ = ['PAIR_KINDS', 'PAIR_FIELDS', 'save_pairs', 'load_pairs']


def save_pairs(path: str, arrays: Dict[str, np.ndarray], meta: dict) -> None:
    """Write a pair file atomically, with the normalisation sums.

    Args:
        path (str): ``.npz`` output.
        arrays (dict): :data:`PAIR_FIELDS` plus ``kind``, ``level``,
            ``c_volume``, ``x0_volume``, ``source_index``.
        meta (dict): JSON-serialisable description.
    """
    from .two_hand_diffusion import encode_two_hands
    n = check_pair_arrays(arrays)
    if n:
        x = encode_two_hands(
            torch.as_tensor(arrays['x0_pose'], dtype=torch.float64),
            torch.as_tensor(arrays['x0_betas'], dtype=torch.float64),
            torch.as_tensor(arrays['x0_root'], dtype=torch.float64)).numpy()
    else:
        x = np.zeros((0, 2 * (96 + 10) + 3))
    write_pairs(path, arrays, meta, x)
