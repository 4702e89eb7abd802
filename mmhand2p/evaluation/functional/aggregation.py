# Copyright (c) mmhand2p contributors. All rights reserved.
"""How per-sample errors become one number: the aggregation rules that
two-hand papers use (numpy).

All functions take ``errors`` of shape ``(S, 2, K)`` (samples, hand axis
0 = right / 1 = left, points: 21 joints, or ``K = 1`` for per-hand mean vertex
errors) and a boolean ``mask`` of the same shape. ``empty`` is returned when
nothing is valid (``nan`` by default; mmpose's ``keypoint_epe`` gives 0).

* :func:`pooled_mean` - every valid (sample, hand, point) counts once
  (mmpose ``InterHandMetric`` via ``keypoint_epe``; InterWild's MPVPE).
* :func:`per_joint_means` / :func:`mean_of_per_joint_means` - the mean over
  samples of each of the 2 x K joints first, then the mean of those
  (InterWild's MPJPE).
* :func:`hand_average` - pooled mean of each hand, then the average of the
  two hands (IntagHand's and DIR's ``(left + right) / 2``).
"""
from typing import Sequence

import numpy as np

__all__ = [
    'AGGREGATIONS', 'pooled_mean', 'per_joint_means',
    'mean_of_per_joint_means', 'hand_average', 'aggregate'
]

AGGREGATIONS = ('pooled', 'per_joint', 'hand_average')


def _prepare(errors, mask):
    errors = np.asarray(errors, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if errors.shape != mask.shape or errors.ndim != 3 or errors.shape[1] != 2:
        raise ValueError(
            'aggregation expects errors and mask of the same '
            '(S, 2, K) shape (hand axis 0 = right, 1 = left), got '
            f'{errors.shape} and {mask.shape}')
    mask = mask & np.isfinite(errors)
    return errors, mask


def pooled_mean(errors, mask, empty: float = float('nan')) -> float:
    """Mean over all valid entries."""
    errors, mask = _prepare(errors, mask)
    n = mask.sum()
    return float(errors[mask].sum() / n) if n > 0 else float(empty)


def per_joint_means(errors, mask) -> np.ndarray:
    """``(2 * K,)`` mean over samples of each (hand, point); nan if never
    valid. Order: right hand's K points, then the left hand's."""
    errors, mask = _prepare(errors, mask)
    n = mask.sum(0)
    s = np.where(mask, errors, 0.0).sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        out = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return out.reshape(-1)


def mean_of_per_joint_means(per_joint: Sequence[np.ndarray],
                            empty: float = float('nan')) -> float:
    """Mean of concatenated per-joint means, skipping never-valid joints.

    InterWild's "all" MPJPE is this over the single-hand and the interacting
    per-joint means together (84 values for 2 x 21 joints).
    """
    v = np.concatenate(
        [np.asarray(p, dtype=np.float64).reshape(-1) for p in per_joint])
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float(empty)


def hand_average(errors, mask, empty: float = float('nan')) -> float:
    """Pooled mean of each hand, averaged over the hands that have any
    valid entry."""
    errors, mask = _prepare(errors, mask)
    means = [
        errors[:, h][mask[:, h]].mean() for h in range(2) if mask[:, h].any()
    ]
    return float(np.mean(means)) if means else float(empty)


def aggregate(errors, mask, mode: str, empty: float = float('nan')) -> float:
    """Aggregate one subset of samples with a named rule.

    Args:
        errors: ``(S, 2, K)``.
        mask: ``(S, 2, K)`` bool.
        mode (str): one of :data:`AGGREGATIONS`.
        empty (float): value when nothing is valid.

    Returns:
        float
    """
    if mode == 'pooled':
        return pooled_mean(errors, mask, empty)
    if mode == 'per_joint':
        return mean_of_per_joint_means([per_joint_means(errors, mask)], empty)
    if mode == 'hand_average':
        return hand_average(errors, mask, empty)
    raise ValueError(f'unknown aggregation {mode!r}; valid: {AGGREGATIONS}')
