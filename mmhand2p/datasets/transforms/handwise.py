# Copyright (c) mmhand2p contributors. All rights reserved.
"""Hand-wise crops: each hand from its own box, the left crop mirrored.

The InterWild / A2P input convention (A2P §4.1, issue 19 item 1): each hand
is cropped from its own box, the left hand's crop is flipped horizontally so
that it looks like a right hand, one hand network runs on both crops as a
batch, and the left hand's outputs are flipped back.

:class:`HandwiseCropAffine` is the data side of that mode. It uses the exact
camera model of :class:`~mmhand2p.datasets.transforms.TwoHandCropAffine`
(:func:`~mmhand2p.datasets.transforms.geometric.crop_camera`, the crop box of
``TwoHandCropAffine.get_box``) once per hand, and mirrors the left crop about
its vertical centre line, ``x' = w - 1 - x``. The mirrored crop is an exact
pinhole image of the camera-frame mirror ``X -> (-X, Y, Z)`` of the scene
taken with ``K'`` whose principal point is ``cx' = w - 1 - cx`` (focal
lengths unchanged), so the left hand's 3D targets are mirrored into
right-hand space exactly as
:func:`~mmhand2p.codecs.two_hand_codec.left_as_right` /
:func:`~mmhand2p.codecs.two_hand_codec.mirror_left_points` do.

:class:`PackHandwiseInputs` packs the two crops side by side for
``HandwiseTopDownReconstructor`` and flips the ground truth back to the
original camera frame (:mod:`mmhand2p.codecs.handwise`). ``ColorJitter`` and
``MotionBlur`` take one image and do not yet run between the two.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmhand2p.codecs import left_as_right, mirror_left_points
from mmhand2p.codecs.handwise import (handwise_mano_to_camera,
                                      handwise_points_to_camera)
from mmhand2p.registry import TRANSFORMS
from mmhand2p.utils.geometry import project_points
from .formatting import PackTwoHandInputs
from .geometric import (PRIOR_MAP_KEYS, TwoHandCropAffine, _mano_rotate,
                        _transform_boxes, apply_affine, compose_affine,
                        crop_camera, flip_affine, invert_affine)

__all__ = [
    'HandwiseCropAffine', 'PackHandwiseInputs', 'mirror_crop_affine',
    'mirror_crop_camera'
]


def mirror_crop_affine(input_w: int) -> np.ndarray:
    """The horizontal flip of a ``input_w``-pixel wide crop,
    ``x -> input_w - 1 - x`` (pixel centres at integers).

    Returns:
        np.ndarray: ``(2, 3)`` float64.
    """
    return flip_affine((input_w - 1) / 2.0)


def mirror_crop_camera(cam_intrinsics: np.ndarray,
                       input_w: int) -> np.ndarray:
    """Intrinsics of the horizontally flipped crop for mirrored 3D points.

    Projecting ``(-X, Y, Z)`` with the returned ``K_m`` gives the flipped
    pixel ``w - 1 - u`` of the projection of ``(X, Y, Z)`` with ``K``
    (zero skew): only the principal point moves, ``cx -> w - 1 - cx``.
    """
    k = np.array(cam_intrinsics, np.float64)
    if abs(k[0, 1]) > 1e-6:
        raise ValueError('mirror_crop_camera: the flip is a camera mirror '
                         f'only for zero skew, got K[0, 1] = {k[0, 1]}')
    k[0, 2] = (input_w - 1) - k[0, 2]
    return k


@TRANSFORMS.register_module()
class HandwiseCropAffine(BaseTransform):
    """Crop each hand from its own box; mirror the left crop.

    Per hand ``i`` (0 = right, 1 = left) the crop box is what
    :meth:`TwoHandCropAffine.get_box` gives for that hand's box alone (padded
    and widened to the input's aspect ratio); a hand that is absent
    (``hand_valid == 0`` or an empty box) is cut from the other hand's box,
    or from the whole image if neither hand has one, and keeps
    ``hand_valid == 0``. The right crop is ``crop_camera``'s warp; the left
    crop is that warp followed by :func:`mirror_crop_affine`, its camera
    :func:`mirror_crop_camera` of the crop's ``K'``, and the left hand's 3D
    points (``joints_3d``, ``vertices``) and MANO parameters are mirrored into
    right-hand space (:func:`mirror_left_points`, :func:`left_as_right`).
    Flip the left hand's outputs back with the same two functions (both are
    involutions). A pending flip (``flip_cx`` of ``RandomTwoHandFlip``) is
    composed into both warps, as in ``TwoHandCropAffine``.

    In training (``test_mode=False``) each hand draws its own shift, scale
    and camera rotation (``TwoHandCropAffine``'s ranges): crop ``i``'s
    camera frame is the original one turned by ``rot_z[i]`` (then mirrored
    for the left), so flipping back is ``X = rot_z[i]^T M X'`` with ``M`` the
    mirror (``x -> -x``) for the left hand only. In test mode ``rot_z`` is
    the identity for both hands: both crops share the original camera frame
    (mirrored for the left), and the relative translation of the flipped-back
    hands is directly the scene's.

    Required keys: ``cam_intrinsics``, ``bboxes``, ``hand_valid``; ``img``
    (optional).

    Modified keys: ``img`` ``(2, H, W, C)``, ``img_shape``,
    ``cam_intrinsics`` ``(2, 3, 3)``, ``joints_3d``, ``vertices``,
    ``joints_2d`` (each hand in its own crop's pixels), ``joints_2d_valid``,
    ``bboxes`` (each in its own crop), ``mano_pose``, ``mano_transl``,
    ``mano_root_joint`` (hand 1 in right-hand space), ``gt_seg`` /
    ``gt_depth`` ``(2, H, W)`` (hand ids unchanged: 1 = right, 2 = left
    hand of the scene).

    Added keys: ``ori_cam_intrinsics``, ``crop_affine`` ``(2, 2, 3)``
    (original image -> each crop, the left's mirror included),
    ``crop_mirrored`` ``(2,)`` bool ``[False, True]``, ``input_size``,
    ``input_center`` ``(2, 2)``, ``input_scale`` ``(2, 2)``, ``rot_z``
    ``(2, 3, 3)`` (each crop's camera rotation, before the mirror),
    ``flip_cx`` (None: consumed), ``handwise`` (True).

    Args:
        input_size (Sequence[int]): network input ``(w, h)`` of each crop.
            Defaults to ``(256, 256)``.
        padding (float): enlargement of each hand's box. Defaults to 1.25.
        scale_range, rotate_range, rotate_prob, shift_factor: training
            augmentation of each hand's crop, drawn independently per hand,
            as in :class:`TwoHandCropAffine` (same defaults).
        test_mode (bool): no random augmentation. Defaults to True (the
            hand-wise mode is not yet a training default).
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
                 test_mode: bool = True,
                 min_size: float = 8.0,
                 interpolation: int = cv2.INTER_LINEAR,
                 border_value: Union[int, Sequence[int]] = 0) -> None:
        #: the two-hand crop whose box rule and camera model are reused
        self.two_hand_crop = TwoHandCropAffine(
            input_size=input_size,
            padding=padding,
            scale_range=scale_range,
            rotate_range=rotate_range,
            rotate_prob=rotate_prob,
            shift_factor=shift_factor,
            test_mode=test_mode,
            min_size=min_size)
        self.input_size = self.two_hand_crop.input_size
        self.padding = self.two_hand_crop.padding
        self.min_size = self.two_hand_crop.min_size
        self.test_mode = test_mode
        self.interpolation = interpolation
        self.border_value = border_value

    def hand_boxes(self, results: Dict) -> np.ndarray:
        """The ``(2, 4)`` box each hand is cropped from (before padding),
        zeros where neither hand has one (whole-image crop)."""
        bboxes = np.asarray(results.get('bboxes', np.zeros((2, 4))),
                            np.float64).reshape(2, 4)
        valid = np.asarray(results.get('hand_valid', np.zeros(2)),
                           bool).reshape(2)
        ok = valid & (bboxes[:, 2] > bboxes[:, 0]) & (
            bboxes[:, 3] > bboxes[:, 1])
        out = np.zeros((2, 4))
        for i in range(2):
            if ok[i]:
                out[i] = bboxes[i]
            elif ok[1 - i]:
                out[i] = bboxes[1 - i]
        return out

    @cache_randomness
    def _sample_aug(self) -> List[Tuple[float, float, np.ndarray]]:
        """``(scale, rot, shift)`` of each hand, drawn independently."""
        return [self.two_hand_crop._sample_aug() for _ in range(2)]

    def transform(self, results: Dict) -> Dict:
        if 'cam_intrinsics' not in results:
            raise KeyError('HandwiseCropAffine needs results["cam_intrinsics"]'
                           f' (img_path={results.get("img_path")})')
        k = np.asarray(results['cam_intrinsics'], np.float64)
        w, h = self.input_size
        boxes = self.hand_boxes(results)
        mirror = mirror_crop_affine(w)
        flip_cx = results.get('flip_cx')
        prev = results.get('crop_affine')
        augs = None if self.test_mode else self._sample_aug()
        ks, rzs, affines, totals, sizes = [], [], [], [], []
        imgs = {key: [] for key in ('img', ) + PRIOR_MAP_KEYS}
        for i in range(2):
            sub = {key: results[key] for key in
                   ('img', 'img_shape', 'ori_shape', 'img_path')
                   if results.get(key) is not None}
            sub.update(bboxes=boxes[i:i + 1],
                       hand_valid=np.array([boxes[i, 2] > boxes[i, 0]]))
            center, size = self.two_hand_crop.get_box(sub)
            rot = 0.0
            if augs is not None:
                scale, rot, shift = augs[i]
                center = center + shift * size
                size = size * scale
            new_k, rz, affine = crop_camera(k, center, size, rot,
                                            self.input_size)
            if i == 1:
                affine = compose_affine(mirror, affine)
                new_k = mirror_crop_camera(new_k, w)
            img_affine = affine
            if flip_cx is not None:
                img_affine = compose_affine(affine, flip_affine(flip_cx))
            for key in imgs:
                if results.get(key) is None:
                    continue
                nearest = key != 'img'
                imgs[key].append(
                    cv2.warpAffine(
                        results[key],
                        img_affine,
                        self.input_size,
                        flags=(cv2.INTER_NEAREST
                               if nearest else self.interpolation),
                        borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0 if nearest else self.border_value))
            ks.append(new_k)
            rzs.append(rz)
            affines.append(affine)
            totals.append(img_affine if prev is None else compose_affine(
                img_affine, prev))
            sizes.append(size)
        for key, crops in imgs.items():
            if crops:
                results[key] = np.stack(crops)

        # 3D: each hand turns with its crop's camera; the left is mirrored
        rzs = np.stack(rzs)
        for key in ('joints_3d', 'vertices'):
            if key in results:
                x = np.asarray(results[key], np.float64)
                x = np.einsum('hij,hnj->hni', rzs, x)
                results[key] = mirror_left_points(x).astype(np.float32)
        _mano_rotate(results, rzs)
        if 'mano_pose' in results:
            pose, transl, root = left_as_right(
                np.asarray(results['mano_pose'], np.float64),
                np.asarray(results['mano_transl'], np.float64),
                np.asarray(results['mano_root_joint'], np.float64))
            results['mano_pose'] = pose.astype(np.float32)
            results['mano_transl'] = transl.astype(np.float32)
            results['mano_root_joint'] = root.astype(np.float32)

        if 'joints_2d' in results:
            j2d = np.asarray(results['joints_2d'], np.float64)
            uv = np.stack([apply_affine(j2d[i], affines[i]) for i in range(2)])
            results['joints_2d'] = uv.astype(np.float32)
            inside = ((uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0)
                      & (uv[..., 1] < h))
            if 'joints_2d_valid' in results:
                results['joints_2d_valid'] = (
                    np.asarray(results['joints_2d_valid'], np.float32) *
                    inside).astype(np.float32)
        if 'bboxes' in results:
            b = np.asarray(results['bboxes'], np.float32).reshape(2, 4)
            results['bboxes'] = np.concatenate([
                _transform_boxes(b[i:i + 1], affines[i]) for i in range(2)
            ])

        results['ori_cam_intrinsics'] = np.asarray(
            results.get('ori_cam_intrinsics', k), np.float32)
        results['cam_intrinsics'] = np.stack(ks).astype(np.float32)
        results['crop_affine'] = np.stack(totals).astype(np.float32)
        results['crop_mirrored'] = np.array([False, True])
        prev_rz = results.get('rot_z')
        results['rot_z'] = (rzs if prev_rz is None else rzs @ np.asarray(
            prev_rz, np.float64)).astype(np.float32)
        results['input_size'] = self.input_size
        results['img_shape'] = (h, w)
        out_center = (np.array([w, h], np.float64) - 1.0) / 2.0
        results['input_center'] = np.stack([
            apply_affine(out_center, invert_affine(t)) for t in totals
        ]).astype(np.float32)
        results['input_scale'] = np.stack(sizes).astype(np.float32)
        results['flip_cx'] = None
        results['handwise'] = True
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size={self.input_size}, '
                f'padding={self.padding}, test_mode={self.test_mode}, '
                f'min_size={self.min_size})')


@TRANSFORMS.register_module()
class PackHandwiseInputs(BaseTransform):
    """Pack the hand-wise crops for a model and the scene's ground truth for
    every consumer.

    * ``inputs``: the two crops side by side, ``(C, H, 2 W)`` uint8 (right
      crop left, mirrored left crop right), so that the standard
      ``ImgDataPreprocessor`` normalises and batches them; the model splits
      them back into ``(2 B, C, H, W)``.
    * ``gt_hands``: the hands in the **original camera frame** (what the
      metrics, the visualizer and the refiner read): the crop-frame targets
      of :class:`HandwiseCropAffine` flipped back with
      :func:`~mmhand2p.codecs.handwise.handwise_points_to_camera` /
      :func:`~mmhand2p.codecs.handwise.handwise_mano_to_camera`;
      ``joints_2d`` and ``bboxes`` in original image pixels (a box is the
      bounds of its crop box's corners mapped back: the original box in
      test mode, a box containing it after a rotation).
    * metainfo: ``cam_intrinsics`` = the original camera, ``img_shape`` =
      the original image's, ``crop_affine`` identity, ``rot_z`` identity
      (the sample's frame is the original image, as for a whole-image
      model), and the per-crop geometry ``handwise_cam_intrinsics``
      ``(2, 3, 3)``, ``handwise_rot_z`` ``(2, 3, 3)``,
      ``handwise_crop_affine`` ``(2, 2, 3)``.

    Dense prior maps (``gt_seg`` / ``gt_depth``) are not packed.

    Args:
        gt_keys (Sequence[str], optional): per-hand keys for ``gt_hands``,
            as in :class:`PackTwoHandInputs` (None: its defaults; ``()``
            packs no ground truth, e.g. for ``DetectThenReconstruct``).
    """

    HANDWISE_META_KEYS = ('handwise_cam_intrinsics', 'handwise_rot_z',
                          'handwise_crop_affine')

    def __init__(self, gt_keys: Optional[Sequence[str]] = None) -> None:
        self.gt_keys = None if gt_keys is None else tuple(gt_keys)

    def transform(self, results: Dict) -> Dict:
        if not results.get('handwise'):
            raise KeyError('PackHandwiseInputs packs the output of '
                           'HandwiseCropAffine (results["handwise"] unset; '
                           f'img_path={results.get("img_path")})')
        out = dict(results)
        img = np.asarray(results['img'])
        out['img'] = np.concatenate([img[0], img[1]], axis=1)
        rz = np.asarray(results['rot_z'], np.float64)
        k = np.asarray(results['ori_cam_intrinsics'], np.float64)
        for key in ('joints_3d', 'vertices'):
            if key in results:
                out[key] = handwise_points_to_camera(
                    np.asarray(results[key], np.float64),
                    rz).astype(np.float32)
        if 'mano_pose' in results and 'mano_root_joint' in results:
            pose, transl = handwise_mano_to_camera(
                torch.from_numpy(np.asarray(results['mano_pose'],
                                            np.float64)),
                torch.from_numpy(np.asarray(results['mano_transl'],
                                            np.float64)),
                torch.from_numpy(
                    np.asarray(results['mano_root_joint'], np.float64)),
                torch.from_numpy(rz))
            out['mano_pose'] = pose.numpy().astype(np.float32)
            out['mano_transl'] = transl.numpy().astype(np.float32)
            out['mano_root_joint'] = mirror_left_points(
                np.asarray(results['mano_root_joint'],
                           np.float64)[..., None, :])[..., 0, :].astype(
                               np.float32)
        if 'joints_3d' in out:
            out['joints_2d'] = project_points(
                torch.from_numpy(out['joints_3d'].astype(np.float64)),
                torch.from_numpy(k)).numpy().astype(np.float32)
        crop_affine = np.asarray(results['crop_affine'], np.float64)
        if 'bboxes' in results:
            b = np.asarray(results['bboxes'], np.float32)
            out['bboxes'] = np.concatenate([
                _transform_boxes(b[i:i + 1], invert_affine(crop_affine[i]))
                for i in range(2)
            ])
        for key in PRIOR_MAP_KEYS:
            out.pop(key, None)
        h, w = results.get('ori_shape', img.shape[1:3])[:2]
        out.update(
            cam_intrinsics=k.astype(np.float32),
            img_shape=(int(h), int(w)),
            input_size=(int(w), int(h)),
            crop_affine=np.eye(2, 3, dtype=np.float32),
            rot_z=np.eye(3, dtype=np.float32),
            handwise_cam_intrinsics=np.asarray(results['cam_intrinsics'],
                                               np.float32),
            handwise_rot_z=rz.astype(np.float32),
            handwise_crop_affine=crop_affine.astype(np.float32))
        for key in ('input_center', 'input_scale'):
            out.pop(key, None)
        pack = PackTwoHandInputs(
            meta_keys=PackTwoHandInputs.DEFAULT_META_KEYS +
            self.HANDWISE_META_KEYS,
            gt_keys=self.gt_keys)
        return pack.transform(out)
