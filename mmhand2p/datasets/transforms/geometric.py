# Copyright (c) mmhand2p contributors. All rights reserved.
"""Geometric two-hand transforms written as changes of a virtual camera.

Both transforms keep the image, the 2D joints, the 3D joints and the MANO
parameters exactly consistent (``docs/data_pipeline.md``):

* :class:`RandomTwoHandFlip` mirrors the camera frame, ``X -> (-X, Y, Z)``,
  which is the image flip ``u -> 2 cx - u`` about the principal point. A
  mirrored right hand is a left hand, so the hand axis is swapped. The image
  flip is only *recorded* (``results['flip_cx']``): flipping a full image
  about ``cx`` would push ``2 |cx - (w - 1) / 2|`` columns out of the frame,
  so :class:`TwoHandCropAffine` composes it into its single warp, and
  :class:`~mmhand2p.datasets.transforms.PackTwoHandInputs` applies it if no
  crop follows. The flip must therefore come **before** the crop.
* :class:`TwoHandCropAffine` rotates the camera about its optical axis,
  ``X' = Rz X``, and picks new intrinsics ``K'`` so that the crop centre lands
  at the centre of the network input with the wanted scale; the image warp is
  the affine map ``(K' Rz K^-1)[:2]`` (affine because ``Rz`` keeps z).

Pixel convention: integer coordinates are pixel centres (OpenCV's, and the
one ``project_points`` is used with), so a ``w``-pixel image spans
``[-0.5, w - 0.5]`` and the centre of a 256-pixel input is 127.5.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmhand2p.registry import TRANSFORMS
from mmhand2p.utils.geometry import rigid_transform_mano

__all__ = [
    'RandomTwoHandFlip', 'TwoHandCropAffine', 'flip_two_hands', 'rot_z_matrix',
    'crop_camera', 'flip_affine', 'apply_affine', 'compose_affine',
    'invert_affine', 'union_hand_box'
]

_HAND_TYPE_FLIP = {'right': 'left', 'left': 'right'}


# ----------------------------------------------------------------------------
# small numpy helpers (float64 inside, callers cast back to float32)
# ----------------------------------------------------------------------------
def rot_z_matrix(theta: float) -> np.ndarray:
    """Rotation by ``theta`` radians about the camera's optical axis.

    In the image (x right, y down) a positive ``theta`` turns the scene
    clockwise: ``Rz`` maps the x axis towards the y axis.

    Returns:
        np.ndarray: ``(3, 3)`` float64.
    """
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def flip_affine(cx: float) -> np.ndarray:
    """The image flip about the principal point, ``u -> 2 cx - u``.

    Returns:
        np.ndarray: ``(2, 3)`` float64.
    """
    return np.array([[-1.0, 0.0, 2.0 * cx], [0.0, 1.0, 0.0]])


def compose_affine(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``second o first`` for ``(2, 3)`` affine maps (``first`` applied
    first)."""
    a = np.vstack([np.asarray(second, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(first, np.float64), [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine map."""
    a = np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine map to ``(..., 2)`` points (float64 out)."""
    points = np.asarray(points, np.float64)
    affine = np.asarray(affine, np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


def crop_camera(cam_intrinsics: np.ndarray, center: Sequence[float],
                size: Sequence[float], rot: float, input_size: Sequence[int]
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The virtual camera of a rotated, scaled crop (the exact model of
    ``docs/data_pipeline.md``).

    The camera turns by ``Rz(rot)`` about its optical axis (3D points move by
    ``X' = Rz X``); the new intrinsics ``K'`` scale the focal lengths by
    ``input_w / size_w`` and ``input_h / size_h`` and put the principal point
    where the (rotated) ray through the crop centre lands on the input's
    centre ``((input_w - 1) / 2, (input_h - 1) / 2)``. The image warp is
    ``(K' Rz K^-1)[:2]``, exactly affine for any upper-triangular ``K``.

    Args:
        cam_intrinsics (np.ndarray): ``(3, 3)`` intrinsics ``K`` of the image
            being cropped.
        center (Sequence[float]): crop centre ``(u, v)`` in that image.
        size (Sequence[float]): crop box ``(w, h)`` in that image's pixels.
        rot (float): in-plane rotation in radians (see :func:`rot_z_matrix`).
        input_size (Sequence[int]): network input ``(w, h)``.

    Returns:
        tuple: ``K'`` ``(3, 3)``, ``Rz`` ``(3, 3)`` and the image affine
        ``(2, 3)`` (image pixels -> input pixels), all float64.
    """
    k = np.asarray(cam_intrinsics, np.float64)
    scale = np.array(
        [input_size[0] / float(size[0]), input_size[1] / float(size[1])])
    rz = rot_z_matrix(rot)
    ray = rz @ np.linalg.solve(k, [center[0], center[1], 1.0])  # z stays 1
    new_k = k.copy()
    new_k[:2] *= scale[:, None]
    new_k[:2, 2] = 0.0
    out_center = (np.asarray(input_size, np.float64) - 1.0) / 2.0
    new_k[:2, 2] = out_center - (new_k @ ray)[:2]
    affine = (new_k @ rz @ np.linalg.inv(k))[:2]
    return new_k, rz, affine


def union_hand_box(bboxes: np.ndarray,
                   hand_valid: np.ndarray) -> Optional[np.ndarray]:
    """Union ``(x1, y1, x2, y2)`` of the valid hands' boxes, or None.

    A box counts if its hand is valid and it has a positive area.
    """
    bboxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
    ok = np.asarray(hand_valid,
                    bool).reshape(-1) & (bboxes[:, 2] > bboxes[:, 0]) & (
                        bboxes[:, 3] > bboxes[:, 1])
    if not ok.any():
        return None
    b = bboxes[ok]
    return np.array(
        [b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])


def _mano_rotate(results: dict, rz: np.ndarray) -> None:
    """Move the valid hands' MANO orient/transl by ``X' = Rz X``.

    ``mano_root_joint`` (J0 of the *rest* mesh in the MANO frame) is a
    property of the shape and does not move.
    """
    if 'mano_pose' not in results:
        return
    pose = np.asarray(results['mano_pose'], np.float64)
    transl = np.asarray(results['mano_transl'], np.float64)
    root = np.asarray(results['mano_root_joint'], np.float64)
    orient, new_transl = rigid_transform_mano(
        torch.from_numpy(pose[:, 0]), torch.from_numpy(transl),
        torch.from_numpy(root),
        torch.from_numpy(rz).expand(pose.shape[0], 3, 3), torch.zeros(3))
    valid = np.asarray(results.get('mano_valid', np.ones(pose.shape[0])), bool)
    pose = pose.copy()
    pose[valid, 0] = orient.numpy()[valid]
    transl = np.where(valid[:, None], new_transl.numpy(), transl)
    results['mano_pose'] = pose.astype(np.float32)
    results['mano_transl'] = transl.astype(np.float32)


#: dense per-pixel ground truth warped along with the image
PRIOR_MAP_KEYS = ('gt_seg', 'gt_depth')


# ----------------------------------------------------------------------------
@TRANSFORMS.register_module()
class RandomTwoHandFlip(BaseTransform):
    """Mirror the camera frame, which swaps the right and left hands.

    The camera-frame mirror ``X -> (-X, Y, Z)`` is the image flip
    ``u -> 2 cx - u`` about the principal point (zero skew required), so the
    intrinsics do not change. A mirrored right hand is a left hand: every
    per-hand array is mirrored and its hand axis swapped (index 0 = right,
    1 = left), ``hand_type`` ``'right' <-> 'left'``. MANO parameters follow
    the mirror identity ``left(mirror_aa(pose), betas, mirror(t)) ==
    mirror(right(pose, betas, t))`` of ``docs/conventions.md`` (exact for left
    models that mirror the right ones); ``mano_root_joint`` is mirrored too
    (the left model's rest root is the mirror of the right one's).

    The image itself is not flipped here: the flip is recorded as pending
    (``flip_cx``) and composed into the warp of the next
    :class:`TwoHandCropAffine` (no pixel is lost), or applied by
    ``PackTwoHandInputs`` if no crop follows. Flip before cropping. Applying
    the flip twice is the identity (the pending flip cancels).

    Required keys: ``cam_intrinsics`` and the per-hand keys present
    (``joints_3d``, ``joints_3d_valid``, ``joints_2d``, ``joints_2d_valid``,
    ``hand_valid``, ``bboxes``, ``mano_*``, ``vertices``).

    Modified keys: the per-hand keys, ``hand_type``.

    Added keys: ``flip`` (bool, toggled), ``flip_cx`` (float or None: the
    pending image flip).

    Args:
        prob (float): probability of flipping. Defaults to 0.5.
    """

    #: per-hand keys swapped as they are
    SWAP_KEYS = ('joints_3d_valid', 'joints_2d_valid', 'hand_valid',
                 'mano_betas', 'mano_valid')
    #: per-hand 3D points mirrored (x -> -x) and swapped
    POINT_KEYS = ('joints_3d', 'mano_transl', 'mano_root_joint', 'vertices')

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'RandomTwoHandFlip: prob must be in [0, 1], '
                             f'got {prob}')
        self.prob = prob

    @cache_randomness
    def _do_flip(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: Dict) -> Dict:
        if self._do_flip():
            flip_two_hands(results)
        else:
            results.setdefault('flip', False)
            results.setdefault('flip_cx', None)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


def flip_two_hands(results: Dict) -> Dict:
    """Apply the camera-frame mirror to a results dict in place (see
    :class:`RandomTwoHandFlip`, which calls it with probability ``prob``).
    """
    if 'cam_intrinsics' not in results:
        raise KeyError('RandomTwoHandFlip needs results["cam_intrinsics"] '
                       '(the (3, 3) intrinsics of the current image)')
    k = np.asarray(results['cam_intrinsics'], np.float64)
    if abs(k[0, 1]) > 1e-6:
        raise ValueError(
            'RandomTwoHandFlip: the camera mirror is an image flip only for '
            f'zero skew, got K[0, 1] = {k[0, 1]} '
            f'(img_path={results.get("img_path")})')
    cx = float(k[0, 2])
    for key in RandomTwoHandFlip.SWAP_KEYS:
        if key in results:
            results[key] = np.asarray(results[key])[::-1].copy()
    for key in RandomTwoHandFlip.POINT_KEYS:
        if key in results:
            x = np.asarray(results[key])
            results[key] = (x * np.array([-1, 1, 1], x.dtype))[::-1].copy()
    if 'mano_pose' in results:
        x = np.asarray(results['mano_pose'])
        results['mano_pose'] = (x *
                                np.array([1, -1, -1], x.dtype))[::-1].copy()
    if 'joints_2d' in results:
        x = np.asarray(results['joints_2d'])
        u = (2.0 * cx - x[..., 0].astype(np.float64)).astype(x.dtype)
        results['joints_2d'] = np.stack([u, x[..., 1]], -1)[::-1].copy()
    if 'bboxes' in results:
        b = np.asarray(results['bboxes'])
        valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        fb = b.copy()
        fb[:, 0] = 2.0 * cx - b[:, 2]
        fb[:, 2] = 2.0 * cx - b[:, 0]
        results['bboxes'] = np.where(valid[:, None], fb, b)[::-1].copy()
    if 'hand_type' in results:
        results['hand_type'] = _HAND_TYPE_FLIP.get(results['hand_type'],
                                                   results['hand_type'])
    if results.get('gt_seg') is not None:
        # hand ids 1 (right) and 2 (left) swap with the hands; the map
        # itself is flipped with the image (pending flip)
        seg = results['gt_seg']
        results['gt_seg'] = np.where(seg == 1, 2, np.where(seg == 2, 1,
                                                           seg)).astype(
                                                               seg.dtype)
    results['flip'] = not results.get('flip', False)
    pending = results.get('flip_cx')
    # the image flip about cx is an involution: a second one cancels
    results['flip_cx'] = None if pending is not None else cx
    return results


# ----------------------------------------------------------------------------
@TRANSFORMS.register_module()
class TwoHandCropAffine(BaseTransform):
    """Crop both hands into the network input with an exact virtual camera.

    The crop box is the union of the valid hands' ``bboxes``, enlarged by
    ``padding`` and widened to the input's aspect ratio (square for a square
    input); without any valid box the whole image is used. In training
    (``test_mode=False``) the box is shifted by up to ``shift_factor`` of its
    size, scaled by a factor drawn from ``scale_range`` (> 1 zooms out) and
    the camera is rotated by an angle drawn from ``rotate_range`` (degrees)
    with probability ``rotate_prob``. See :func:`crop_camera` for the camera
    model: 3D joints ``X' = Rz X``, intrinsics ``K'``, warp
    ``(K' Rz K^-1)[:2]`` composed with a pending flip; 2D joints are the
    affine of the old ones (equal to ``project_points(X', K')`` to float
    precision); MANO ``global_orient`` / ``transl`` move with
    ``rigid_transform_mano(orient, transl, mano_root_joint, Rz, 0)``;
    ``mano_root_joint`` does not change (it is J0 of the rest mesh in the
    MANO frame, a function of the shape only). 2D joints that leave the input
    get ``joints_2d_valid = 0``; boxes become the bounds of their transformed
    corners.

    Required keys: ``cam_intrinsics``, ``bboxes``, ``hand_valid``; ``img``
    (optional: geometry alone is transformed without it).

    Modified keys: ``img``, ``img_shape``, ``cam_intrinsics`` (``K'``),
    ``joints_3d``, ``joints_2d``, ``joints_2d_valid``, ``bboxes``,
    ``mano_pose``, ``mano_transl``, ``vertices``.

    Added keys: ``ori_cam_intrinsics`` (the first ``K``), ``crop_affine``
    ``(2, 3)`` original image -> input (pending flip and earlier crops
    composed in), ``rot_z`` ``(3, 3)`` the applied rotation (composed),
    ``input_size`` ``(w, h)``, ``input_center`` (the crop centre in the
    original image), ``input_scale`` (the crop box ``(w, h)`` in pixels of
    the image it was cut from), ``flip_cx`` (None: consumed).

    Args:
        input_size (Sequence[int]): network input ``(w, h)``. Defaults to
            ``(256, 256)``.
        padding (float): enlargement of the union box. Defaults to 1.25.
        scale_range (Sequence[float]): ``(min, max)`` box scale factor.
            Defaults to ``(0.8, 1.2)``.
        rotate_range (float | Sequence[float]): ``(min, max)`` rotation in
            degrees, or ``r`` for ``(-r, r)``. Defaults to 30.
        rotate_prob (float): probability of rotating. Defaults to 0.6.
        shift_factor (float): maximal shift of the centre per axis, as a
            fraction of the box size. Defaults to 0.1.
        test_mode (bool): no random augmentation. Defaults to False.
        min_size (float): smallest box side in pixels before padding.
            Defaults to 8.
        interpolation (int): ``cv2`` interpolation flag. Defaults to
            ``cv2.INTER_LINEAR``.
        border_value (int | Sequence[int]): fill value outside the image.
            Defaults to 0.
    """

    def __init__(self,
                 input_size: Sequence[int] = (256, 256),
                 padding: float = 1.25,
                 scale_range: Sequence[float] = (0.8, 1.2),
                 rotate_range: Union[float, Sequence[float]] = 30.0,
                 rotate_prob: float = 0.6,
                 shift_factor: float = 0.1,
                 test_mode: bool = False,
                 min_size: float = 8.0,
                 interpolation: int = cv2.INTER_LINEAR,
                 border_value: Union[int, Sequence[int]] = 0) -> None:
        if len(input_size) != 2 or min(input_size) <= 0:
            raise ValueError('TwoHandCropAffine: input_size must be (w, h) '
                             f'with positive sides, got {input_size}')
        if padding <= 0:
            raise ValueError(f'TwoHandCropAffine: padding must be > 0, got '
                             f'{padding}')
        if isinstance(rotate_range, (int, float)):
            rotate_range = (-float(rotate_range), float(rotate_range))
        if len(scale_range) != 2 or min(scale_range) <= 0 or \
                scale_range[0] > scale_range[1]:
            raise ValueError('TwoHandCropAffine: scale_range must be '
                             f'(min, max) with 0 < min <= max, got '
                             f'{scale_range}')
        if len(rotate_range) != 2 or rotate_range[0] > rotate_range[1]:
            raise ValueError('TwoHandCropAffine: rotate_range must be a '
                             f'number or (min, max), got {rotate_range}')
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.padding = float(padding)
        self.scale_range = tuple(float(s) for s in scale_range)
        self.rotate_range = tuple(float(r) for r in rotate_range)
        self.rotate_prob = float(rotate_prob)
        self.shift_factor = float(shift_factor)
        self.test_mode = test_mode
        self.min_size = float(min_size)
        self.interpolation = interpolation
        self.border_value = border_value

    # ------------------------------------------------------------------
    def get_box(self, results: Dict) -> Tuple[np.ndarray, np.ndarray]:
        """Crop centre ``(2,)`` and size ``(w, h)`` before augmentation, in
        the pixels of the current image (after a pending flip)."""
        box = union_hand_box(
            results.get('bboxes', np.zeros((0, 4))),
            results.get('hand_valid', np.zeros(0, bool)))
        aspect = self.input_size[0] / self.input_size[1]
        if box is None:
            h, w = _image_hw(results)
            center = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
            size = np.array([float(w), float(h)])
        else:
            center = (box[:2] + box[2:]) / 2.0
            size = np.maximum(box[2:] - box[:2], self.min_size) * self.padding
        if size[0] / size[1] > aspect:
            size = np.array([size[0], size[0] / aspect])
        else:
            size = np.array([size[1] * aspect, size[1]])
        return center, size

    @cache_randomness
    def _sample_aug(self) -> Tuple[float, float, np.ndarray]:
        scale = np.random.uniform(*self.scale_range)
        rot = 0.0
        if np.random.rand() < self.rotate_prob:
            rot = math.radians(np.random.uniform(*self.rotate_range))
        shift = np.random.uniform(-1.0, 1.0, size=2) * self.shift_factor
        return float(scale), float(rot), shift

    def transform(self, results: Dict) -> Dict:
        center, size = self.get_box(results)
        rot = 0.0
        if not self.test_mode:
            scale, rot, shift = self._sample_aug()
            center = center + shift * size
            size = size * scale
        return self.crop(results, center, size, rot)

    def crop(self, results: Dict, center: Sequence[float],
             size: Sequence[float], rot: float) -> Dict:
        """Apply a given crop (deterministic; ``transform`` draws the
        augmentation and calls this).

        Args:
            results (dict): the results dict (modified in place).
            center (Sequence[float]): crop centre in the current image
                (after a pending flip), pixels.
            size (Sequence[float]): crop box ``(w, h)`` in pixels.
            rot (float): camera rotation about the optical axis, radians.

        Returns:
            dict: ``results``.
        """
        if 'cam_intrinsics' not in results:
            raise KeyError('TwoHandCropAffine needs results["cam_intrinsics"]'
                           f' (img_path={results.get("img_path")})')
        k = np.asarray(results['cam_intrinsics'], np.float64)
        new_k, rz, affine = crop_camera(k, center, size, rot, self.input_size)

        # image: the pending flip first, then the crop, in one warp
        img_affine = affine
        flip_cx = results.get('flip_cx')
        if flip_cx is not None:
            img_affine = compose_affine(affine, flip_affine(flip_cx))
        if results.get('img') is not None:
            results['img'] = cv2.warpAffine(
                results['img'],
                img_affine,
                self.input_size,
                flags=self.interpolation,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=self.border_value)
        # dense ground truth (synthetic set): same warp, nearest neighbour;
        # depth z is unchanged by the in-plane rotation and the flip
        for key in PRIOR_MAP_KEYS:
            if results.get(key) is not None:
                results[key] = cv2.warpAffine(
                    results[key],
                    img_affine,
                    self.input_size,
                    flags=cv2.INTER_NEAREST,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0)
        prev = results.get('crop_affine')
        total = img_affine if prev is None else compose_affine(
            img_affine, prev)

        # 3D points rotate with the camera
        for key in ('joints_3d', 'vertices'):
            if key in results:
                x = np.asarray(results[key], np.float64)
                results[key] = (x @ rz.T).astype(np.float32)
        _mano_rotate(results, rz)

        # 2D joints: the affine of the old ones (== projection with K')
        w, h = self.input_size
        if 'joints_2d' in results:
            uv = apply_affine(results['joints_2d'], affine)
            results['joints_2d'] = uv.astype(np.float32)
            inside = ((uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0)
                      & (uv[..., 1] < h))
            if 'joints_2d_valid' in results:
                results['joints_2d_valid'] = (
                    np.asarray(results['joints_2d_valid'], np.float32) *
                    inside).astype(np.float32)
        if 'bboxes' in results:
            results['bboxes'] = _transform_boxes(results['bboxes'], affine)

        results['ori_cam_intrinsics'] = np.asarray(
            results.get('ori_cam_intrinsics', k), np.float32)
        results['cam_intrinsics'] = new_k.astype(np.float32)
        results['crop_affine'] = total.astype(np.float32)
        prev_rz = results.get('rot_z')
        results['rot_z'] = (rz if prev_rz is None else
                            rz @ np.asarray(prev_rz, np.float64)).astype(
                                np.float32)
        results['input_size'] = self.input_size
        results['img_shape'] = (h, w)
        out_center = (np.array([w, h], np.float64) - 1.0) / 2.0
        results['input_center'] = apply_affine(
            out_center, invert_affine(total)).astype(np.float32)
        results['input_scale'] = np.asarray(size, np.float32)
        results['flip_cx'] = None
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'padding={self.padding}, scale_range={self.scale_range}, '
                f'rotate_range={self.rotate_range}, '
                f'rotate_prob={self.rotate_prob}, '
                f'shift_factor={self.shift_factor}, '
                f'test_mode={self.test_mode})')


def _image_hw(results: Dict) -> Tuple[int, int]:
    if results.get('img') is not None:
        return tuple(results['img'].shape[:2])
    for key in ('img_shape', 'ori_shape'):
        if results.get(key) is not None:
            return int(results[key][0]), int(results[key][1])
    raise KeyError('TwoHandCropAffine: no valid hand box and no image size '
                   '(img, img_shape or ori_shape) to fall back to '
                   f'(img_path={results.get("img_path")})')


def _transform_boxes(bboxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Bounds of the affine images of the boxes' corners; empty boxes stay
    zeros."""
    b = np.asarray(bboxes, np.float64)
    valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    corners = np.stack(
        [b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]],
        axis=1)  # (n, 4, 2)
    c = apply_affine(corners, affine)
    out = np.concatenate([c.min(1), c.max(1)], axis=-1)
    return np.where(valid[:, None], out, 0.0).astype(np.float32)
