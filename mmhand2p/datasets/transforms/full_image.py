# Copyright (c) mmhand2p contributors. All rights reserved.
"""Packing whole images for models that find the hands themselves
(``DetectThenReconstruct``, ``docs/detect_reconstruct.md``)."""
from typing import Dict, Optional, Sequence

import numpy as np

from mmhand2p.registry import TRANSFORMS
from mmhand2p.structures import HAND_FIELDS
from .formatting import PackTwoHandInputs

__all__ = ['PackFullImageInputs']


@TRANSFORMS.register_module()
class PackFullImageInputs(PackTwoHandInputs):
    """Pack an uncropped image and its ground truth in the image's own
    camera frame.

    :class:`PackTwoHandInputs` without a crop before it: ``inputs`` is the
    whole ``(3, H, W)`` uint8 BGR image, ``gt_hands`` holds the per-hand
    fields of :data:`~mmhand2p.structures.HAND_FIELDS` present in the
    results (joints in the full-image camera frame, ``joints_2d`` and
    ``bboxes`` in full-image pixels), and the metainfo carries the full
    image's ``cam_intrinsics``, ``img_shape``, ``ori_shape``, ``img_path``,
    ``hand_type`` and an identity ``crop_affine`` (``input_size`` is the
    image's ``(w, h)``). Images of different sizes stay a list through the
    default collate function; the model does its own resizing.

    Pipeline for ``tools/test.py``::

        [dict(type='LoadTwoHandImage'), dict(type='PackFullImageInputs')]

    Required keys: ``img``.

    Args:
        meta_keys (Sequence[str]): metainfo keys. Defaults to
            :attr:`DEFAULT_META_KEYS`.
        gt_keys (Sequence[str], optional): per-hand keys of ``gt_hands``.
            Defaults to the keys of ``HAND_FIELDS`` (no training targets).

    Raises:
        ValueError: if the image was cropped (``TwoHandCropAffine`` ran
            before): the model would crop a crop, and the metric would read
            crop-frame ground truth.
    """

    DEFAULT_META_KEYS = ('img_path', 'img_id', 'sample_idx', 'ori_shape',
                         'img_shape', 'input_size', 'hand_type',
                         'cam_intrinsics', 'ori_cam_intrinsics', 'crop_affine',
                         'rot_z', 'flip')

    def __init__(self,
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS,
                 gt_keys: Optional[Sequence[str]] = None) -> None:
        super().__init__(
            meta_keys=meta_keys,
            gt_keys=tuple(HAND_FIELDS) if gt_keys is None else gt_keys)

    def transform(self, results: Dict) -> Dict:
        affine = results.get('crop_affine')
        cropped = 'input_center' in results or (
            affine is not None
            and not np.allclose(np.asarray(affine), np.eye(2, 3)))
        if cropped:
            raise ValueError(
                'PackFullImageInputs packs whole images, but this sample was '
                'cropped (crop_affine / input_center are set): remove '
                'TwoHandCropAffine from the pipeline '
                f'(img_path={results.get("img_path")})')
        return super().transform(results)
