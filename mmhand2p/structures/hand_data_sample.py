# Copyright (c) mmhand2p contributors. All rights reserved.
"""The data sample that flows from datasets through models to metrics."""
from typing import List, Optional

import torch
from mmengine.structures import BaseDataElement, InstanceData

__all__ = ['HandDataSample', 'HAND_FIELDS', 'stack_field']

#: Fields of ``gt_hands`` / ``pred_hands``. Both are ``InstanceData`` with
#: exactly 2 instances: index 0 = right hand, 1 = left hand. Units: metres,
#: camera frame (OpenCV axes) unless stated. Not every field is always set.
HAND_FIELDS = {
    'hand_valid': '(2,) bool: the hand is present/annotated in this sample',
    'joints_3d': '(2, 21, 3) wrist-first joints, camera frame, metres',
    'joints_3d_valid': '(2, 21) float 0/1 validity of each 3D joint',
    'joints_2d': '(2, 21, 2) pixels of the network input (= the original '
    'image when not cropped); invert crop_affine to map them back',
    'joints_2d_valid': '(2, 21) float 0/1',
    'vertices': '(2, 778, 3) MANO vertices, camera frame, metres',
    'mano_pose': '(2, 16, 3) axis-angle, global orient first, camera frame '
    '(flat-hand-relative, see MANOLayer)',
    'mano_betas': '(2, 10)',
    'mano_transl': '(2, 3) MANO transl so that MANOLayer reproduces the '
    'camera-frame mesh',
    'mano_valid': '(2,) bool: MANO parameters/vertices are valid',
    'bboxes': '(2, 4) x1, y1, x2, y2, pixels of the same image as joints_2d',
    'scores': '(2,) detection / prediction confidence (predictions only)',
}


class HandDataSample(BaseDataElement):
    """A two-hand sample: ground truth, prediction and meta information.

    Attributes:
        gt_hands (InstanceData): ground truth, 2 instances (right, left); see
            :data:`HAND_FIELDS`.
        pred_hands (InstanceData): predictions, same layout and fields.
        metainfo: ``img_path``, ``img_id``, ``ori_shape`` (h, w),
            ``cam_intrinsics`` (3, 3) of the original image, ``hand_type``
            (``'right' | 'left' | 'interacting'``), ``input_center``,
            ``input_scale``, ``crop_affine`` (2, 3) original image -> network
            input, ``flip_left`` (the left hand was mirrored for the
            network)...
    """

    @property
    def gt_hands(self) -> InstanceData:
        return self._gt_hands

    @gt_hands.setter
    def gt_hands(self, value: InstanceData) -> None:
        self.set_field(value, '_gt_hands', dtype=InstanceData)

    @gt_hands.deleter
    def gt_hands(self) -> None:
        del self._gt_hands

    @property
    def pred_hands(self) -> InstanceData:
        return self._pred_hands

    @pred_hands.setter
    def pred_hands(self, value: InstanceData) -> None:
        self.set_field(value, '_pred_hands', dtype=InstanceData)

    @pred_hands.deleter
    def pred_hands(self) -> None:
        del self._pred_hands


def stack_field(data_samples: List[BaseDataElement], name: str,
                where: str = 'gt_hands') -> Optional[torch.Tensor]:
    """Stack a per-hand field of ``gt_hands`` over the batch: ``(B, 2, ...)``.

    Returns None if any sample lacks the field.
    """
    out = []
    for ds in data_samples:
        hands = getattr(ds, where, None)
        if hands is None or name not in hands:
            return None
        out.append(torch.as_tensor(hands.get(name)))
    return torch.stack(out)
