# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pairing detected right / left hand boxes into two-hand crops.

A detector (``mmdet.RTMDet`` with the classes ``right_hand`` = 0 and
``left_hand`` = 1) gives per-class NMS-ed boxes. A two-hand reconstructor
wants one crop per *person*: the union of that person's right and left hand.
The rule used here (``docs/detect_reconstruct.md``):

1. **Duplicates.** Within one class, a box whose IoU with a higher-scoring
   box of the same class exceeds ``dup_iou_thr`` is dropped (one person has
   one right hand; the detector's own NMS may use a looser threshold).
   Boxes of different classes are never suppressed against each other:
   interacting hands overlap legitimately.
2. **Candidates.** Every (right, left) combination whose normalised centre
   distance -- the distance between the box centres divided by the mean of
   the two boxes' sizes, a box's size being the mean of its width and
   height -- is below ``dist_thr`` is a candidate pair.
3. **Greedy matching.** Candidates are taken in order of ``priority``:
   ``'score'`` (default) by the combined score (sum of the two detection
   scores) descending, ties broken by the smaller distance; ``'distance'``
   by the distance ascending, ties broken by the larger combined score. A
   candidate is accepted when neither of its boxes is used yet.
4. **Singles.** Every box left over becomes a single-hand "pair"
   (``(i, -1)`` for a right hand, ``(-1, j)`` for a left hand).
5. **Order.** Pairs are returned by their score (the sum of their hands'
   scores, a missing hand counting 0) descending, ties by the smallest box
   index, and cut to ``max_pairs`` if given.

All functions are pure numpy (tensors are accepted and converted).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'box_centers', 'box_sizes', 'box_iou_matrix', 'normalized_center_distance',
    'suppress_duplicates', 'pair_hands', 'pair_scores'
]

#: labels of the hand detector (the hand axis of mmhand2p)
RIGHT, LEFT = 0, 1

Pair = Tuple[int, int]


def _as_boxes(boxes) -> np.ndarray:
    b = np.asarray(
        boxes.detach().cpu().numpy() if hasattr(boxes, 'detach') else boxes,
        np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError('boxes must have shape (N, 4) (x1, y1, x2, y2), got '
                         f'{b.shape}')
    return b


def _as_vector(x, n: int, name: str, dtype) -> np.ndarray:
    v = np.asarray(x.detach().cpu().numpy() if hasattr(x, 'detach') else x,
                   dtype).reshape(-1)
    if v.shape != (n, ):
        raise ValueError(f'{name} must have shape ({n},) to match the boxes, '
                         f'got {v.shape}')
    return v


def box_centers(boxes) -> np.ndarray:
    """Centres of ``(N, 4)`` ``x1, y1, x2, y2`` boxes: ``(N, 2)``."""
    b = _as_boxes(boxes)
    return (b[:, :2] + b[:, 2:]) / 2.0


def box_sizes(boxes) -> np.ndarray:
    """Sizes of ``(N, 4)`` boxes, the mean of width and height: ``(N,)``."""
    b = _as_boxes(boxes)
    return ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2.0


def box_iou_matrix(a, b) -> np.ndarray:
    """IoU of every box of ``a`` ``(N, 4)`` with every box of ``b``
    ``(M, 4)``: ``(N, M)``; 0 where the union is empty."""
    a, b = _as_boxes(a), _as_boxes(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def normalized_center_distance(a, b) -> np.ndarray:
    """Centre distance of every box of ``a`` ``(N, 4)`` to every box of
    ``b`` ``(M, 4)`` divided by the mean size of the two boxes (see
    :func:`box_sizes`): ``(N, M)``, dimensionless (``inf`` for two empty
    boxes)."""
    ca, cb = box_centers(a), box_centers(b)
    dist = np.linalg.norm(ca[:, None] - cb[None], axis=-1)
    mean_size = (box_sizes(a)[:, None] + box_sizes(b)[None]) / 2.0
    return np.where(mean_size > 0, dist / np.maximum(mean_size, 1e-12), np.inf)


def suppress_duplicates(boxes,
                        scores,
                        labels,
                        iou_thr: float = 0.5) -> np.ndarray:
    """Indices of the boxes kept after a per-class duplicate removal.

    Within each label, boxes are visited by score (descending, ties by
    index) and a box is dropped if its IoU with an already kept box of the
    same label exceeds ``iou_thr``.

    Args:
        boxes: ``(N, 4)`` ``x1, y1, x2, y2``.
        scores: ``(N,)``.
        labels: ``(N,)`` integers.
        iou_thr (float): IoU above which the lower-scoring box is dropped.

    Returns:
        np.ndarray: ``(K,)`` int64 indices into the input, ascending.
    """
    b = _as_boxes(boxes)
    n = len(b)
    s = _as_vector(scores, n, 'scores', np.float64)
    lab = _as_vector(labels, n, 'labels', np.int64)
    keep: List[int] = []
    for cls in np.unique(lab):
        idx = np.flatnonzero(lab == cls)
        idx = idx[np.lexsort((idx, -s[idx]))]
        kept: List[int] = []
        for i in idx:
            if kept and (box_iou_matrix(b[i:i + 1], b[kept])[0]
                         > iou_thr).any():
                continue
            kept.append(int(i))
        keep.extend(kept)
    return np.asarray(sorted(keep), np.int64)


def pair_scores(pairs: Sequence[Pair], scores) -> np.ndarray:
    """Score of each pair: the sum of its hands' scores (a missing hand,
    index -1, counts 0). ``(P,)``."""
    s = np.asarray(
        scores.detach().cpu().numpy() if hasattr(scores, 'detach') else scores,
        np.float64).reshape(-1)
    return np.asarray([sum(s[i] for i in p if i >= 0) for p in pairs],
                      np.float64)


def pair_hands(boxes,
               scores,
               labels,
               dist_thr: float = 1.5,
               dup_iou_thr: Optional[float] = 0.5,
               priority: str = 'score',
               max_pairs: Optional[int] = None) -> List[Pair]:
    """Pair detected right / left hands into two-hand crops (module
    docstring: the rule, step by step).

    Args:
        boxes: ``(N, 4)`` ``x1, y1, x2, y2`` image pixels.
        scores: ``(N,)`` detection scores.
        labels: ``(N,)`` 0 = right hand, 1 = left hand.
        dist_thr (float): pair a right and a left box only if their
            normalised centre distance (:func:`normalized_center_distance`)
            is below it. Two hands side by side are about 1 apart. Defaults
            to 1.5.
        dup_iou_thr (float, optional): same-class duplicate removal
            (:func:`suppress_duplicates`); None disables it. Defaults to
            0.5.
        priority (str): greedy order, ``'score'`` or ``'distance'``.
        max_pairs (int, optional): keep at most this many pairs (the best
            by pair score).

    Returns:
        list[tuple[int, int]]: ``(right_index, left_index)`` into the input
        boxes, -1 where the pair has no hand of that side; ordered by pair
        score (:func:`pair_scores`) descending.
    """
    if priority not in ('score', 'distance'):
        raise ValueError("pair_hands: priority must be 'score' or "
                         f"'distance', got {priority!r}")
    if dist_thr <= 0:
        raise ValueError(f'pair_hands: dist_thr must be > 0, got {dist_thr}')
    if max_pairs is not None and max_pairs < 0:
        raise ValueError(f'pair_hands: max_pairs must be >= 0, got '
                         f'{max_pairs}')
    b = _as_boxes(boxes)
    n = len(b)
    s = _as_vector(scores, n, 'scores', np.float64)
    lab = _as_vector(labels, n, 'labels', np.int64)
    bad = sorted(set(lab.tolist()) - {RIGHT, LEFT})
    if bad:
        raise ValueError(f'pair_hands: labels must be 0 (right hand) or 1 '
                         f'(left hand), got {bad}; check the detector\'s '
                         'classes (right_hand, left_hand)')
    keep = (
        suppress_duplicates(b, s, lab, dup_iou_thr)
        if dup_iou_thr is not None else np.arange(n))
    rights = [int(i) for i in keep if lab[i] == RIGHT]
    lefts = [int(i) for i in keep if lab[i] == LEFT]

    cands = []
    if rights and lefts:
        dist = normalized_center_distance(b[rights], b[lefts])
        for a, r in enumerate(rights):
            for c, lft in enumerate(lefts):
                d = float(dist[a, c])
                if d < dist_thr:
                    cands.append((r, lft, s[r] + s[lft], d))
    if priority == 'score':
        cands.sort(key=lambda t: (-t[2], t[3], t[0], t[1]))
    else:
        cands.sort(key=lambda t: (t[3], -t[2], t[0], t[1]))
    used = set()
    pairs: List[Pair] = []
    for r, lft, _, _ in cands:
        if r in used or lft in used:
            continue
        used.update((r, lft))
        pairs.append((r, lft))
    pairs += [(r, -1) for r in rights if r not in used]
    pairs += [(-1, lft) for lft in lefts if lft not in used]

    ps = pair_scores(pairs, s)
    first = [min(i for i in p if i >= 0) for p in pairs]
    order = sorted(range(len(pairs)), key=lambda k: (-ps[k], first[k]))
    pairs = [pairs[k] for k in order]
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
    return pairs
