# Copyright (c) mmhand2p contributors. All rights reserved.
"""Training targets, the left-as-right convention, and packing.

The "show left hands as right hands" convention (InterWild, A2P): a network
that runs the *right* MANO model for both hands sees the left hand's MANO
parameters mirrored into right-hand space. By the mirror identity of
``docs/conventions.md``, ``left_mano(pose, betas, t) ==
mirror(right_mano(mirror_aa(pose), betas, mirror(t)))``, so:

* targets: :func:`left_as_right` mirrors the left hand's (index 1) pose,
  translation and rest root joint;
* predictions: the right model's output for hand 1 is un-mirrored with
  :func:`mirror_left_points`, or the parameters are mapped back to the left
  model with :func:`right_as_left` (the inverse; the mirror is an
  involution, so it is the same map).

These are the only functions that implement the convention.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData, PixelData

from mmhand2p.registry import TRANSFORMS
from mmhand2p.structures import HAND_FIELDS, HandDataSample
from mmhand2p.utils.geometry import (axis_angle_to_rot6d, mirror_axis_angle,
                                     mirror_points)
from .geometric import PRIOR_MAP_KEYS, compose_affine, flip_affine

__all__ = [
    'left_as_right', 'right_as_left', 'mirror_left_points',
    'GenerateTwoHandTargets', 'PackTwoHandInputs', 'TARGET_FIELDS'
]

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Per-hand target fields that ``GenerateTwoHandTargets`` adds (2 instances,
#: index 0 = right, 1 = left). Packed into ``gt_hands`` with HAND_FIELDS.
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
@TRANSFORMS.register_module()
class GenerateTwoHandTargets(BaseTransform):
    """Training targets for two-hand regression (see :data:`TARGET_FIELDS`).

    * 2.5D joints: ``(u, v)`` in input pixels (``joints_2d`` after the crop)
      and depth relative to each hand's root joint in metres; a normalised
      version ``(u / w, v / h, rel_depth / depth_range + 0.5)``.
    * relative translation: left wrist minus right wrist (camera frame).
    * MANO: ``mano_pose_6d`` if ``with_rot6d``; with ``left_as_right`` the
      left hand's ``mano_pose`` / ``mano_transl`` / ``mano_root_joint`` are
      replaced by their right-hand-space mirrors (:func:`left_as_right`) and
      ``flip_left`` is set, so a network running the right MANO model for
      both hands is supervised directly; joints and vertices stay in the
      true camera frame (un-mirror the right model's hand-1 output with
      :func:`mirror_left_points` before comparing).

    Put it after the geometric transforms, just before
    :class:`PackTwoHandInputs`.

    Required keys: ``joints_3d``, ``joints_3d_valid``, ``joints_2d``,
    ``joints_2d_valid``, ``hand_valid``; ``input_size`` or ``img_shape``.

    Added keys: :data:`TARGET_FIELDS`, ``flip_left``.

    Args:
        depth_range (float): extent (metres) of the relative depth that
            ``joints_25d_norm`` maps to [0, 1]. Defaults to 0.4.
        with_rot6d (bool): add ``mano_pose_6d``. Defaults to True.
        left_as_right (bool): the InterWild / A2P convention above.
            Defaults to False.
        root_index (int): the root joint of the 21 (0 = wrist). Defaults
            to 0.
    """

    def __init__(self,
                 depth_range: float = 0.4,
                 with_rot6d: bool = True,
                 left_as_right: bool = False,
                 root_index: int = 0) -> None:
        if depth_range <= 0:
            raise ValueError('GenerateTwoHandTargets: depth_range must be > '
                             f'0, got {depth_range}')
        self.depth_range = float(depth_range)
        self.with_rot6d = with_rot6d
        self.left_as_right = left_as_right
        self.root_index = root_index

    def transform(self, results: Dict) -> Dict:
        for key in ('joints_3d', 'joints_3d_valid', 'joints_2d',
                    'joints_2d_valid', 'hand_valid'):
            if key not in results:
                raise KeyError(f'GenerateTwoHandTargets needs results'
                               f'["{key}"] (img_path='
                               f'{results.get("img_path")})')
        w, h = _input_wh(results)
        j3d = np.asarray(results['joints_3d'], np.float64)
        j2d = np.asarray(results['joints_2d'], np.float64)
        v3d = np.asarray(results['joints_3d_valid'], np.float32)
        v2d = np.asarray(results['joints_2d_valid'], np.float32)
        present = np.asarray(results['hand_valid'], bool).astype(np.float32)
        r = self.root_index

        rel_z = j3d[..., 2] - j3d[:, r:r + 1, 2]
        root_ok = v3d[:, r] * present  # (2,)
        results['joints_25d'] = np.concatenate([j2d, rel_z[..., None]],
                                               -1).astype(np.float32)
        results['joints_25d_norm'] = np.stack(
            [j2d[..., 0] / w, j2d[..., 1] / h, rel_z / self.depth_range + 0.5],
            -1).astype(np.float32)
        in_range = np.abs(rel_z) <= self.depth_range / 2
        results['joints_25d_valid'] = (v2d * v3d * root_ok[:, None] *
                                       in_range).astype(np.float32)

        wrist = j3d[:, r]
        results['rel_transl'] = (wrist - wrist[0]).astype(np.float32)
        ok = float(root_ok[0] * root_ok[1])
        results['rel_transl_valid'] = np.full(2, ok, np.float32)

        if 'mano_pose' in results:
            if self.left_as_right:
                pose, transl, root = left_as_right(
                    np.asarray(results['mano_pose'], np.float32),
                    _opt(results, 'mano_transl'),
                    _opt(results, 'mano_root_joint'))
                results['mano_pose'] = pose
                if transl is not None:
                    results['mano_transl'] = transl
                if root is not None:
                    results['mano_root_joint'] = root
            if self.with_rot6d:
                results['mano_pose_6d'] = axis_angle_to_rot6d(
                    torch.from_numpy(
                        np.asarray(results['mano_pose'],
                                   np.float64))).numpy().astype(np.float32)
        results['flip_left'] = bool(self.left_as_right)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(depth_range={self.depth_range}, '
                f'with_rot6d={self.with_rot6d}, '
                f'left_as_right={self.left_as_right}, '
                f'root_index={self.root_index})')


def _opt(results: Dict, key: str) -> Optional[np.ndarray]:
    return None if key not in results else np.asarray(results[key], np.float32)


def _input_wh(results: Dict) -> Tuple[int, int]:
    if results.get('input_size') is not None:
        return int(results['input_size'][0]), int(results['input_size'][1])
    if results.get('img') is not None:
        h, w = results['img'].shape[:2]
        return w, h
    if results.get('img_shape') is not None:
        return int(results['img_shape'][1]), int(results['img_shape'][0])
    raise KeyError('GenerateTwoHandTargets: no input_size, img or img_shape '
                   f'in the results (img_path={results.get("img_path")})')


# ----------------------------------------------------------------------------
@TRANSFORMS.register_module()
class PackTwoHandInputs(BaseTransform):
    """Pack the results into ``inputs`` and a :class:`HandDataSample`.

    * ``inputs``: ``(C, H, W)`` tensor of the image (uint8 BGR as loaded;
      normalisation and BGR->RGB are the data preprocessor's job).
    * ``data_samples.gt_hands``: an ``InstanceData`` with 2 instances (right,
      left) holding every key of ``gt_keys`` present in the results, as
      tensors (float32, bool kept).
    * ``data_samples.metainfo``: every key of ``meta_keys`` present. The
      geometric metainfo is always completed: ``crop_affine`` (identity if
      nothing cropped), ``cam_intrinsics``, ``ori_cam_intrinsics``,
      ``rot_z``, ``input_size``, ``flip``, ``flip_left``.

    A pending flip (``flip_cx``; :class:`RandomTwoHandFlip` without a crop
    after it) is applied here to the whole image with ``cv2.warpAffine`` and
    composed into ``crop_affine``; the flip is about the principal point, so
    ``2 |cx - (w - 1) / 2|`` columns at one side are lost (filled with 0) --
    crop after flipping to avoid that.

    Args:
        meta_keys (Sequence[str]): metainfo keys. Defaults to
            :attr:`DEFAULT_META_KEYS`.
        gt_keys (Sequence[str], optional): per-hand keys for ``gt_hands``.
            Defaults to the keys of ``HAND_FIELDS`` and ``TARGET_FIELDS``.
    """

    DEFAULT_META_KEYS = ('img_path', 'img_id', 'sample_idx', 'ori_shape',
                         'img_shape', 'input_size', 'input_center',
                         'input_scale', 'hand_type', 'cam_intrinsics',
                         'ori_cam_intrinsics', 'crop_affine', 'rot_z', 'flip',
                         'flip_left')

    def __init__(self,
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS,
                 gt_keys: Optional[Sequence[str]] = None) -> None:
        self.meta_keys = tuple(meta_keys)
        self.gt_keys = tuple(
            gt_keys) if gt_keys is not None else tuple(HAND_FIELDS) + tuple(
                k for k in TARGET_FIELDS if k not in HAND_FIELDS)

    def transform(self, results: Dict) -> Dict:
        img = results.get('img')
        if img is None:
            raise KeyError('PackTwoHandInputs needs results["img"]; load the '
                           f'image first (img_path={results.get("img_path")})')
        _apply_pending_flip(results)
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

        h, w = img.shape[:2]
        results.setdefault('img_shape', (h, w))
        results.setdefault('input_size', (w, h))
        if results.get('crop_affine') is None:
            results['crop_affine'] = np.eye(2, 3, dtype=np.float32)
        if 'cam_intrinsics' in results:
            results.setdefault('ori_cam_intrinsics', results['cam_intrinsics'])
        results.setdefault('rot_z', np.eye(3, dtype=np.float32))
        results.setdefault('flip', False)
        results.setdefault('flip_left', False)

        gt = InstanceData()
        for key in self.gt_keys:
            if key in results:
                gt.set_field(_to_tensor(results[key]), key)
        sample = HandDataSample()
        sample.gt_hands = gt
        for key in PRIOR_MAP_KEYS:
            if results.get(key) is not None:
                sample.set_field(
                    PixelData(data=_to_tensor(results[key])[None]), key)
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(meta_keys={self.meta_keys}, '
                f'gt_keys={self.gt_keys})')


def _apply_pending_flip(results: Dict) -> None:
    cx = results.get('flip_cx')
    if cx is None:
        return
    aff = flip_affine(cx)
    img = results['img']
    h, w = img.shape[:2]
    for key in PRIOR_MAP_KEYS:
        if results.get(key) is not None:
            results[key] = cv2.warpAffine(
                results[key], aff, (w, h),
                flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                borderValue=0)
    results['img'] = cv2.warpAffine(
        img,
        aff, (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0)
    prev = results.get('crop_affine')
    total = aff if prev is None else compose_affine(aff, prev)
    results['crop_affine'] = total.astype(np.float32)
    results['flip_cx'] = None


def _to_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return torch.from_numpy(x.copy())
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
