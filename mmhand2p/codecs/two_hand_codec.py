# Copyright (c) mmhand2p contributors. All rights reserved.
"""The two-hand target codec: the conventions that the data pipeline's
target generator and the heads must share.

One config variable describes them (as mmpose passes one ``codec`` to
``GenerateTarget(encoder=codec)`` and ``head=dict(decoder=codec)``)::

    codec = dict(type='TwoHandCodec', left_as_right=True, depth_range=0.4,
                 crop_extent=0.25)
    ...
    dict(type='GenerateTwoHandTargets', encoder=codec)   # pipeline
    head=dict(type='TwoHandMANOHead', ..., decoder=codec)  # model

The conventions:

* **left as right** (InterWild, A2P): a network that runs the *right* MANO
  model for both hands sees the left hand's (index 1) MANO parameters
  mirrored into right-hand space. By the mirror identity of
  ``docs/conventions.md``, ``left_mano(pose, betas, t) ==
  mirror(right_mano(mirror_aa(pose), betas, mirror(t)))``, so targets are
  mirrored with :func:`left_as_right`, predicted parameters are mapped back
  with :func:`right_as_left` (the same map: the mirror is an involution) and
  the right model's points of hand 1 are un-mirrored with
  :func:`mirror_left_points`. These are the only functions that implement
  the convention.
* **2.5D joints**: ``(u, v)`` in network-input pixels and the depth relative
  to the hand's root joint; normalised as ``(u / w, v / h, rel_depth /
  depth_range + 0.5)``, valid where ``|rel_depth| <= depth_range / 2``.
* **camera**: full perspective with the crop's intrinsics ``K'`` (metainfo
  ``cam_intrinsics``, skew allowed); ``crop_extent`` metres span the input
  at the reference depth ``fx * crop_extent / w``.
* **root joint**: ``root_index`` of the 21 wrist-first joints (0 = wrist);
  relative translation = left root minus right root, camera frame, metres.

The codec is pure math on numpy arrays (:meth:`TwoHandCodec.encode`, the
pipeline) and tensors (the decode helpers, the heads); it imports only the
layers below it.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmhand2p.registry import CODECS
from mmhand2p.utils.geometry import (axis_angle_to_rot6d, mirror_axis_angle,
                                     mirror_points)

__all__ = [
    'TwoHandCodec', 'TARGET_FIELDS', 'left_as_right', 'right_as_left',
    'mirror_left_points'
]

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Per-hand target fields that :meth:`TwoHandCodec.encode` adds (2
#: instances, index 0 = right, 1 = left), packed into ``gt_hands`` next to
#: ``HAND_FIELDS``.
TARGET_FIELDS = {
    'joints_25d':
    '(2, 21, 3) u, v in input pixels + depth relative to the '
    'hand\'s root joint (metres)',
    'joints_25d_norm':
    '(2, 21, 3) u / input_w, v / input_h, '
    'rel_depth / depth_range + 0.5 (in [0, 1] inside the input and range)',
    'joints_25d_valid':
    '(2, 21) float 0/1: 2D and 3D valid, root valid, '
    'relative depth inside the range',
    'rel_transl':
    '(2, 3) this hand\'s wrist minus the right wrist, camera '
    'frame, metres: row 1 is the relative translation target (left - '
    'right), row 0 is zero',
    'rel_transl_valid':
    '(2,) float 0/1, the same for both rows: both hands '
    'present with valid wrists',
    'mano_pose_6d':
    '(2, 16, 6) 6D rotations of mano_pose',
    'mano_root_joint':
    '(2, 3) J0 of the shaped rest mesh (MANO frame)',
}


# ----------------------------------------------------------------------------
# left hands as right hands
# ----------------------------------------------------------------------------
def _mirror_hand1(x: Optional[ArrayLike], fn, tail: int):
    """Apply ``fn`` to hand 1 of ``x`` whose hand axis is ``-(tail + 1)``."""
    if x is None:
        return None
    is_np = isinstance(x, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(x)) if is_np else x
    if t.dim() < tail + 1 or t.shape[-(tail + 1)] != 2:
        raise ValueError('expected a hand axis of size 2 at dim '
                         f'{-(tail + 1)}, got shape {tuple(t.shape)}')
    hands = t.unbind(-(tail + 1))
    out = torch.stack([hands[0], fn(hands[1])], dim=-(tail + 1))
    return out.numpy() if is_np else out


def left_as_right(
    mano_pose: Optional[ArrayLike] = None,
    mano_transl: Optional[ArrayLike] = None,
    mano_root_joint: Optional[ArrayLike] = None
) -> Tuple[Optional[ArrayLike], Optional[ArrayLike], Optional[ArrayLike]]:
    """Express the left hand's MANO parameters in mirrored right-hand space.

    The right MANO model run on the returned hand-1 parameters gives the
    mirror image (``x -> -x``) of the left hand. Hand 0 is returned as it
    is. Works on numpy arrays and (differentiably) on tensors.

    Args:
        mano_pose: ``(..., 2, 16, 3)`` axis-angle, or None.
        mano_transl: ``(..., 2, 3)``, or None.
        mano_root_joint: ``(..., 2, 3)`` rest-mesh root J0, or None.

    Returns:
        tuple: the three inputs with hand 1 mirrored (None stays None).
    """
    pose = _mirror_hand1(mano_pose, mirror_axis_angle, 2)
    transl = _mirror_hand1(mano_transl, mirror_points, 1)
    root = _mirror_hand1(mano_root_joint, mirror_points, 1)
    return pose, transl, root


def right_as_left(
    mano_pose: Optional[ArrayLike] = None,
    mano_transl: Optional[ArrayLike] = None,
    mano_root_joint: Optional[ArrayLike] = None
) -> Tuple[Optional[ArrayLike], Optional[ArrayLike], Optional[ArrayLike]]:
    """Inverse of :func:`left_as_right`: hand-1 parameters predicted for the
    right model back to the left model (the mirror is an involution).

    Args and returns as in :func:`left_as_right`.
    """
    return left_as_right(mano_pose, mano_transl, mano_root_joint)


def mirror_left_points(points: ArrayLike) -> ArrayLike:
    """Mirror hand 1 of ``(..., 2, N, 3)`` points (``x -> -x``).

    Un-mirrors the right model's mesh / joints of a left hand given in
    right-hand space (and mirrors back; an involution).
    """
    return _mirror_hand1(points, mirror_points, 2)


# ----------------------------------------------------------------------------
@CODECS.register_module()
class TwoHandCodec:
    """Target encoding and decoding conventions of two-hand MANO regression.

    :meth:`encode` turns a sample's ground truth (after the geometric
    transforms) into the training targets of :data:`TARGET_FIELDS`
    (``GenerateTwoHandTargets(encoder=codec)`` calls it); the tensor helpers
    (:meth:`to_network_pose` / :meth:`from_network_pose`,
    :meth:`reference_depth`, :meth:`backproject`, :meth:`project`,
    :meth:`normalize_25d`, :meth:`denormalize_25d`) are what heads decode
    with (``head=dict(decoder=codec)``). Hand axis: 0 = right, 1 = left;
    metres, camera frame of the network input.

    Args:
        left_as_right (bool): the left hand's MANO parameters live in
            mirrored right-hand space on the network side (see the module
            docstring). Defaults to False.
        depth_range (float): metres of relative depth that the normalised
            2.5D depth maps to [0, 1]. Defaults to 0.4.
        crop_extent (float): metres spanned by the network input at the
            reference depth (a padded two-hand crop of InterHand2.6M spans
            about 0.2-0.25 m); the heads' initial depth guess. Defaults to
            0.25.
        root_index (int): the root joint of the 21 wrist-first joints
            (0 = wrist). Defaults to 0.
        with_rot6d (bool): :meth:`encode` adds ``mano_pose_6d``. Defaults to
            True.
        camera_model (str): ``'perspective'`` (the only one so far): full
            perspective with the crop intrinsics from the metainfo.
    """

    #: the keys of the pipeline's results that :meth:`encode` needs
    required_keys = ('joints_3d', 'joints_3d_valid', 'joints_2d',
                     'joints_2d_valid', 'hand_valid')
    #: optional keys of the results passed on to :meth:`encode`
    auxiliary_encode_keys = ('mano_pose', 'mano_transl', 'mano_root_joint')
    #: the per-hand fields :meth:`encode` may return (all have the hand
    #: axis first and are packed into ``gt_hands``)
    target_keys = ('joints_25d', 'joints_25d_norm', 'joints_25d_valid',
                   'rel_transl', 'rel_transl_valid', 'mano_pose',
                   'mano_transl', 'mano_root_joint', 'mano_pose_6d')
    #: the settings that change target values: a head checks the pipeline's
    #: (metainfo ``target_conventions``) against its own
    convention_keys = ('left_as_right', 'depth_range', 'root_index',
                       'camera_model')
    camera_models = ('perspective', )

    def __init__(self,
                 left_as_right: bool = False,
                 depth_range: float = 0.4,
                 crop_extent: float = 0.25,
                 root_index: int = 0,
                 with_rot6d: bool = True,
                 camera_model: str = 'perspective') -> None:
        if not depth_range > 0:
            raise ValueError(
                f'TwoHandCodec: depth_range must be > 0, got {depth_range}')
        if not crop_extent > 0:
            raise ValueError(
                f'TwoHandCodec: crop_extent must be > 0, got {crop_extent}')
        if int(root_index) != root_index or not 0 <= root_index < 21:
            raise ValueError('TwoHandCodec: root_index must be an integer in '
                             f'[0, 21) (0 = wrist), got {root_index}')
        if camera_model not in self.camera_models:
            raise ValueError(
                f'TwoHandCodec: camera_model={camera_model!r} is not '
                f'supported; use one of {self.camera_models}')
        self.left_as_right = bool(left_as_right)
        self.depth_range = float(depth_range)
        self.crop_extent = float(crop_extent)
        self.root_index = int(root_index)
        self.with_rot6d = bool(with_rot6d)
        self.camera_model = camera_model

    def conventions(self) -> Dict:
        """The settings that change target values (:attr:`convention_keys`),
        recorded by the target generator in the metainfo
        (``target_conventions``) and checked by the heads."""
        return {k: getattr(self, k) for k in self.convention_keys}

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(left_as_right='
                f'{self.left_as_right}, depth_range={self.depth_range}, '
                f'crop_extent={self.crop_extent}, root_index='
                f'{self.root_index}, with_rot6d={self.with_rot6d}, '
                f'camera_model={self.camera_model!r})')

    # ------------------------------------------------------------------
    # encoding (numpy, in the data pipeline)
    # ------------------------------------------------------------------
    def encode(self,
               joints_3d: np.ndarray,
               joints_3d_valid: np.ndarray,
               joints_2d: np.ndarray,
               joints_2d_valid: np.ndarray,
               hand_valid: np.ndarray,
               input_size: Sequence[int],
               mano_pose: Optional[np.ndarray] = None,
               mano_transl: Optional[np.ndarray] = None,
               mano_root_joint: Optional[np.ndarray] = None) -> Dict:
        """Training targets of one sample (:data:`TARGET_FIELDS`).

        Args:
            joints_3d (np.ndarray): ``(2, 21, 3)`` camera frame, metres.
            joints_3d_valid (np.ndarray): ``(2, 21)``.
            joints_2d (np.ndarray): ``(2, 21, 2)`` network-input pixels.
            joints_2d_valid (np.ndarray): ``(2, 21)``.
            hand_valid (np.ndarray): ``(2,)`` the hand is present.
            input_size (Sequence[int]): ``(w, h)`` of the network input.
            mano_pose (np.ndarray, optional): ``(2, 16, 3)`` axis-angle.
            mano_transl (np.ndarray, optional): ``(2, 3)``.
            mano_root_joint (np.ndarray, optional): ``(2, 3)``.

        Returns:
            dict: ``joints_25d``, ``joints_25d_norm``, ``joints_25d_valid``,
            ``rel_transl``, ``rel_transl_valid``; with ``mano_pose``:
            ``mano_pose_6d`` (if ``with_rot6d``) and, with ``left_as_right``,
            the mirrored ``mano_pose`` and the given ``mano_transl`` /
            ``mano_root_joint`` (float32 numpy arrays, hand axis first).
        """
        w, h = input_size
        j3d = np.asarray(joints_3d, np.float64)
        j2d = np.asarray(joints_2d, np.float64)
        v3d = np.asarray(joints_3d_valid, np.float32)
        v2d = np.asarray(joints_2d_valid, np.float32)
        present = np.asarray(hand_valid, bool).astype(np.float32)
        r = self.root_index

        out = {}
        rel_z = j3d[..., 2] - j3d[:, r:r + 1, 2]
        root_ok = v3d[:, r] * present  # (2,)
        out['joints_25d'] = np.concatenate([j2d, rel_z[..., None]],
                                           -1).astype(np.float32)
        out['joints_25d_norm'] = np.stack(
            [j2d[..., 0] / w, j2d[..., 1] / h, rel_z / self.depth_range + 0.5],
            -1).astype(np.float32)
        in_range = np.abs(rel_z) <= self.depth_range / 2
        out['joints_25d_valid'] = (v2d * v3d * root_ok[:, None] *
                                   in_range).astype(np.float32)

        wrist = j3d[:, r]
        out['rel_transl'] = (wrist - wrist[0]).astype(np.float32)
        ok = float(root_ok[0] * root_ok[1])
        out['rel_transl_valid'] = np.full(2, ok, np.float32)

        if mano_pose is not None:
            if self.left_as_right:
                pose, transl, root = left_as_right(
                    np.asarray(mano_pose, np.float32), _f32(mano_transl),
                    _f32(mano_root_joint))
                out['mano_pose'] = mano_pose = pose
                if transl is not None:
                    out['mano_transl'] = transl
                if root is not None:
                    out['mano_root_joint'] = root
            if self.with_rot6d:
                out['mano_pose_6d'] = axis_angle_to_rot6d(
                    torch.from_numpy(np.asarray(
                        mano_pose, np.float64))).numpy().astype(np.float32)
        return out

    # ------------------------------------------------------------------
    # decoding helpers (tensors, in the heads)
    # ------------------------------------------------------------------
    def to_network_pose(self, pose: Tensor) -> Tensor:
        """Each hand's own axis-angle MANO pose ``(..., 2, 16, 3)`` to the
        network's space (hand 1 mirrored if ``left_as_right``)."""
        return left_as_right(pose)[0] if self.left_as_right else pose

    def from_network_pose(self, pose: Tensor) -> Tensor:
        """Inverse of :meth:`to_network_pose` (the same map: an involution):
        predicted ``(..., 2, 16, 3)`` axis-angle back to each hand's own
        MANO model (the left one un-mirrored if ``left_as_right``)."""
        return right_as_left(pose)[0] if self.left_as_right else pose

    def reference_depth(self, intrinsics: Tensor,
                        input_size: Sequence[int]) -> Tensor:
        """Depth (metres) at which the input spans ``crop_extent``:
        ``fx * crop_extent / w``, ``(B,)`` from ``(B, 3, 3)`` intrinsics."""
        return intrinsics[:, 0, 0] * self.crop_extent / float(input_size[0])

    @staticmethod
    def backproject(uv: Tensor, depth: Tensor, intrinsics: Tensor) -> Tensor:
        """Camera-frame points from pixels and depths (perspective, skew
        allowed).

        Args:
            uv (Tensor): ``(B, ..., 2)`` network-input pixels.
            depth (Tensor): ``(B, ...)`` metres.
            intrinsics (Tensor): ``(B, 3, 3)``.

        Returns:
            Tensor: ``(B, ..., 3)``.
        """
        k = intrinsics.reshape(intrinsics.shape[:1] + (1, ) *
                               (uv.dim() - 2) + (3, 3))
        u, v = uv[..., 0], uv[..., 1]
        x = (u - k[..., 0, 2] - k[..., 0, 1] *
             (v - k[..., 1, 2]) / k[..., 1, 1]) / k[..., 0, 0] * depth
        y = (v - k[..., 1, 2]) / k[..., 1, 1] * depth
        return torch.stack([x, y, depth], dim=-1)

    @staticmethod
    def project(points: Tensor,
                intrinsics: Tensor,
                min_depth: float = 1e-3) -> Tensor:
        """Pixels of camera-frame points, depth clamped to ``min_depth``.

        Args:
            points (Tensor): ``(B, ..., 3)``, e.g. ``(B, 2, 21, 3)``.
            intrinsics (Tensor): ``(B, 3, 3)``.

        Returns:
            Tensor: ``(B, ..., 2)``.
        """
        uvw = torch.einsum('bij,b...j->b...i', intrinsics,
                           points / points[..., 2:3].clamp(min=min_depth))
        return uvw[..., :2]

    def normalize_25d(self, joints: Tensor, intrinsics: Tensor,
                      input_size: Sequence[int]) -> Tensor:
        """Camera-frame joints as the normalised 2.5D of :meth:`encode`:
        ``(u / w, v / h, rel_depth / depth_range + 0.5)``.

        Args:
            joints (Tensor): ``(B, 2, 21, 3)`` camera frame, metres.
            intrinsics (Tensor): ``(B, 3, 3)`` of the network input.
            input_size (Sequence[int]): ``(w, h)``.

        Returns:
            Tensor: ``(B, 2, 21, 3)``.
        """
        uv = self.project(joints, intrinsics)
        r = self.root_index
        rel_z = joints[..., 2] - joints[:, :, r:r + 1, 2]
        return torch.stack([
            uv[..., 0] / input_size[0], uv[..., 1] / input_size[1],
            rel_z / self.depth_range + 0.5
        ], dim=-1)

    def denormalize_25d(self, joints_25d_norm: Tensor, root_depth: Tensor,
                        intrinsics: Tensor,
                        input_size: Sequence[int]) -> Tensor:
        """Inverse of :meth:`normalize_25d` given each hand's root depth.

        Args:
            joints_25d_norm (Tensor): ``(B, 2, 21, 3)``.
            root_depth (Tensor): ``(B, 2)`` metres.
            intrinsics (Tensor): ``(B, 3, 3)``.
            input_size (Sequence[int]): ``(w, h)``.

        Returns:
            Tensor: ``(B, 2, 21, 3)`` camera frame, metres.
        """
        n = joints_25d_norm
        uv = torch.stack(
            [n[..., 0] * input_size[0], n[..., 1] * input_size[1]], dim=-1)
        depth = (n[..., 2] - 0.5) * self.depth_range + root_depth[..., None]
        return self.backproject(uv, depth, intrinsics)


def _f32(x) -> Optional[np.ndarray]:
    return None if x is None else np.asarray(x, np.float32)
