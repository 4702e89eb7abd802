# Copyright (c) mmhand2p contributors. All rights reserved.
"""Transforms for the hand-box detector's pipelines (mmdet results dicts)."""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmhand2p.registry import TRANSFORMS


@TRANSFORMS.register_module()
class HandednessFlip(BaseTransform):
    """Random horizontal flip for hand detection that keeps handedness
    right.

    The mirror image of a right hand is a left hand, so a plain flip
    (mmdet's ``RandomFlip``) of a two-class (right / left) hand-box sample
    teaches the detector the wrong class. This flip mirrors the image and
    the boxes exactly like ``RandomFlip(direction='horizontal')`` and
    swaps the labels of each pair in ``label_swaps``. For a one-class
    ("hand") set use mmdet's ``RandomFlip``.

    Required keys: ``img``. Modified keys: ``img``, ``gt_bboxes`` (mmdet
    ``HorizontalBoxes`` or an ``(N, 4)`` xyxy array), ``gt_bboxes_labels``,
    ``homography_matrix`` (when present). Added keys: ``flip``,
    ``flip_direction``.

    Args:
        prob (float): probability of flipping. Default 0.5.
        label_swaps (sequence[tuple[int, int]]): label pairs exchanged by a
            flip. Default ``((0, 1),)``: right_hand <-> left_hand of
            ``configs/rtmdet_hand/``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 label_swaps: Sequence[Tuple[int, int]] = ((0, 1), )):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'HandednessFlip: prob must be in [0, 1], got '
                             f'{prob}')
        mapping: Dict[int, int] = {}
        for pair in label_swaps:
            if len(pair) != 2:
                raise ValueError('HandednessFlip: label_swaps must hold '
                                 f'pairs, got {pair!r}')
            a, b = int(pair[0]), int(pair[1])
            if a in mapping or b in mapping or a == b:
                raise ValueError('HandednessFlip: every label may appear in '
                                 f'one pair only, got {label_swaps!r}')
            mapping[a], mapping[b] = b, a
        self.prob = float(prob)
        self.mapping = mapping

    @cache_randomness
    def _do_flip(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def _swap(self, labels: np.ndarray) -> np.ndarray:
        out = np.array(labels, copy=True)
        for a, b in self.mapping.items():
            out[labels == a] = b
        return out

    def transform(self, results: Dict) -> Optional[Dict]:
        if 'img' not in results:
            raise KeyError('HandednessFlip: the results have no "img" (load '
                           'the image first)')
        if not self._do_flip():
            results['flip'] = False
            results['flip_direction'] = None
            return results
        img = results['img']
        h, w = img.shape[:2]
        results['img'] = np.ascontiguousarray(img[:, ::-1])
        boxes = results.get('gt_bboxes', None)
        if boxes is not None:
            if hasattr(boxes, 'flip_'):  # mmdet BaseBoxes
                boxes.flip_((h, w), 'horizontal')
            else:
                b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
                b[:, [0, 2]] = w - b[:, [2, 0]]
                results['gt_bboxes'] = b
        if results.get('gt_bboxes_labels', None) is not None:
            results['gt_bboxes_labels'] = self._swap(
                np.asarray(results['gt_bboxes_labels']))
        flip = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
        if results.get('homography_matrix', None) is None:
            results['homography_matrix'] = flip
        else:
            results['homography_matrix'] = flip @ results['homography_matrix']
        results['flip'] = True
        results['flip_direction'] = 'horizontal'
        return results

    def __repr__(self) -> str:
        swaps = sorted({tuple(sorted(p)) for p in self.mapping.items()})
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'label_swaps={swaps})')
