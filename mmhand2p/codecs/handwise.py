# Copyright (c) mmhand2p contributors. All rights reserved.
"""Flip back the hand-wise mode's outputs (issue 19 item 1).

In the hand-wise mode (``HandwiseCropAffine`` in
``mmhand2p/datasets/transforms/handwise.py``) hand ``i`` is seen by its own
crop camera, whose frame is the original camera frame turned by
``rot_z[i]`` (the identity in test mode) and, for the left hand (``i = 1``),
mirrored ``x -> -x`` afterwards, so that a single right-hand network sees
both hands. These functions take a hand network's outputs in those crop
frames back to the original camera frame: un-mirror hand 1 (the mirror
functions of :mod:`.two_hand_codec`), then undo each hand's rotation. Both
hands then share one frame and the relative translation is the difference
of their wrists there. Works on numpy arrays and (differentiably) on
tensors; the MANO function on tensors.
"""
from typing import Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmhand2p.utils.geometry import rigid_transform_mano
from .two_hand_codec import mirror_left_points, right_as_left

__all__ = ['handwise_points_to_camera', 'handwise_mano_to_camera']

ArrayLike = Union[np.ndarray, Tensor]


def handwise_points_to_camera(points: ArrayLike,
                              rot_z: ArrayLike) -> ArrayLike:
    """Points of both hands from their crop frames to the camera frame.

    Args:
        points: ``(..., 2, N, 3)`` hand 0 in the right crop's frame, hand 1
            in the mirrored left crop's frame (right-hand space).
        rot_z: ``(..., 2, 3, 3)`` each crop's camera rotation (``rot_z`` of
            ``HandwiseCropAffine``; before the mirror).

    Returns:
        ``(..., 2, N, 3)`` in the original camera frame (hand 1 a left
        hand), ``X = rot_z[i]^T M X'``.
    """
    unmirrored = mirror_left_points(points)
    if isinstance(unmirrored, Tensor):
        rot = torch.as_tensor(rot_z, dtype=unmirrored.dtype,
                              device=unmirrored.device)
        return torch.einsum('...hji,...hnj->...hni', rot, unmirrored)
    return np.einsum('...hji,...hnj->...hni', np.asarray(rot_z), unmirrored)


def handwise_mano_to_camera(mano_pose: Tensor, mano_transl: Tensor,
                            mano_root_joint: Tensor,
                            rot_z: Tensor) -> Tuple[Tensor, Tensor]:
    """MANO parameters of both hands from their crop frames to the camera
    frame.

    Hand 1's parameters are those of the right model in the mirrored crop
    (:func:`~mmhand2p.codecs.two_hand_codec.left_as_right` space); they go
    back to the left model (:func:`right_as_left`) and then both hands turn
    by ``rot_z[i]^T`` about their rest root joint
    (:func:`~mmhand2p.utils.geometry.rigid_transform_mano`).

    Args:
        mano_pose (Tensor): ``(..., 2, 16, 3)`` axis-angle.
        mano_transl (Tensor): ``(..., 2, 3)``.
        mano_root_joint (Tensor): ``(..., 2, 3)`` rest-mesh root J0 in the
            same (mirrored for hand 1) space as the parameters.
        rot_z (Tensor): ``(..., 2, 3, 3)`` each crop's camera rotation.

    Returns:
        tuple: ``mano_pose`` ``(..., 2, 16, 3)`` and ``mano_transl``
        ``(..., 2, 3)`` of the right and the left model in the camera frame.
    """
    pose, transl, root = right_as_left(mano_pose, mano_transl,
                                       mano_root_joint)
    rot = torch.as_tensor(rot_z, dtype=pose.dtype, device=pose.device)
    rot = rot.expand(pose.shape[:-2] + (3, 3))
    orient, transl = rigid_transform_mano(pose[..., 0, :], transl, root,
                                          rot.transpose(-1, -2),
                                          torch.zeros_like(transl))
    pose = torch.cat([orient[..., None, :], pose[..., 1:, :]], dim=-2)
    return pose, transl
