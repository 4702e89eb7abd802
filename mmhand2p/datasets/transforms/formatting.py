# Copyright (c) mmhand2p contributors. All rights reserved.
"""Training targets and packing.

The target conventions (left hands as right hands, 2.5D normalisation and
depth range, camera model, root joint) are the codec's
(:class:`mmhand2p.codecs.TwoHandCodec`): ``GenerateTwoHandTargets(
encoder=codec)`` encodes with the same ``codec`` config variable that the
head decodes with (``head=dict(decoder=codec)``). ``left_as_right``,
``right_as_left``, ``mirror_left_points`` and ``TARGET_FIELDS`` live there
and are re-exported here.
"""
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData, PixelData

from mmhand2p.codecs import (TARGET_FIELDS, left_as_right, mirror_left_points,
                             resolve_codec, right_as_left)
from mmhand2p.registry import TRANSFORMS
from mmhand2p.structures import HAND_FIELDS, HandDataSample
from mmhand2p.utils.typing import OptConfigType
from .geometric import PRIOR_MAP_KEYS, compose_affine, flip_affine

__all__ = [
    'left_as_right', 'right_as_left', 'mirror_left_points',
    'GenerateTwoHandTargets', 'PackTwoHandInputs', 'TARGET_FIELDS'
]

#: the former keywords of GenerateTwoHandTargets and their defaults
_LEGACY_DEFAULTS = dict(
    depth_range=0.4, with_rot6d=True, left_as_right=False, root_index=0)


# ----------------------------------------------------------------------------
@TRANSFORMS.register_module()
class GenerateTwoHandTargets(BaseTransform):
    """Training targets for two-hand regression (see :data:`TARGET_FIELDS`),
    encoded by the codec (:meth:`TwoHandCodec.encode
    <mmhand2p.codecs.TwoHandCodec.encode>`).

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

    Added keys: the encoded targets, ``flip_left``, ``target_conventions``
    (the codec's :meth:`~mmhand2p.codecs.TwoHandCodec.conventions`, which
    the head checks against its own) and ``target_keys`` (the names of the
    encoded per-hand targets, extended if already there: every one of them
    is packed into ``gt_hands`` by :class:`PackTwoHandInputs`).

    Args:
        encoder (dict | TwoHandCodec, optional): the ``codec`` config
            variable that the head receives as ``decoder`` too. Without it,
            a ``TwoHandCodec`` from the deprecated keywords below.
        depth_range (float, optional): deprecated, set it in the codec
            (default 0.4: metres of relative depth that
            ``joints_25d_norm`` maps to [0, 1]).
        with_rot6d (bool, optional): deprecated, set it in the codec
            (default True: add ``mano_pose_6d``).
        left_as_right (bool, optional): deprecated, set it in the codec
            (default False; True mirrors the left hand's parameters, see
            docs/data_pipeline.md).
        root_index (int, optional): deprecated, set it in the codec
            (default 0: the wrist).

    A deprecated keyword that contradicts ``encoder`` raises ``ValueError``
    naming it.
    """

    def __init__(self,
                 encoder: OptConfigType = None,
                 depth_range: Optional[float] = None,
                 with_rot6d: Optional[bool] = None,
                 left_as_right: Optional[bool] = None,
                 root_index: Optional[int] = None) -> None:
        self.encoder = resolve_codec(
            encoder,
            dict(
                depth_range=depth_range,
                with_rot6d=with_rot6d,
                left_as_right=left_as_right,
                root_index=root_index),
            _LEGACY_DEFAULTS,
            owner='GenerateTwoHandTargets',
            arg='encoder')

    # the codec's settings under their former names
    @property
    def depth_range(self) -> float:
        return self.encoder.depth_range

    @property
    def with_rot6d(self) -> bool:
        return self.encoder.with_rot6d

    @property
    def left_as_right(self) -> bool:
        return self.encoder.left_as_right

    @property
    def root_index(self) -> int:
        return self.encoder.root_index

    def transform(self, results: Dict) -> Dict:
        codec = self.encoder
        for key in codec.required_keys:
            if key not in results:
                raise KeyError(f'GenerateTwoHandTargets needs results'
                               f'["{key}"] (img_path='
                               f'{results.get("img_path")})')
        encoded = codec.encode(
            *(results[k] for k in codec.required_keys),
            input_size=_input_wh(results),
            **{k: results.get(k)
               for k in codec.auxiliary_encode_keys})
        results.update(encoded)
        declared = list(results.get('target_keys') or ())
        results['target_keys'] = declared + [
            k for k in encoded if k not in declared
        ]
        results['flip_left'] = bool(codec.left_as_right)
        results['target_conventions'] = codec.conventions()
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(encoder={self.encoder!r})'


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
      left) holding every key of ``gt_keys`` present in the results and
      every target named in ``results['target_keys']``, as tensors
      (float32, bool kept).
    * ``data_samples.metainfo``: every key of ``meta_keys`` present. The
      geometric metainfo is always completed: ``crop_affine`` (identity if
      nothing cropped), ``cam_intrinsics``, ``ori_cam_intrinsics``,
      ``rot_z``, ``input_size``, ``flip``, ``flip_left``.

    A pending flip (``flip_cx``; :class:`RandomTwoHandFlip` without a crop
    after it) is applied here to the whole image with ``cv2.warpAffine`` and
    composed into ``crop_affine``; the flip is about the principal point, so
    ``2 |cx - (w - 1) / 2|`` columns at one side are lost (filled with 0) --
    crop after flipping to avoid that.

    Targets are not dropped silently: a target generator (or any
    transform) that adds per-hand targets names them in
    ``results['target_keys']`` (``GenerateTwoHandTargets`` does), and with
    the default ``gt_keys`` each of them passes through into ``gt_hands``,
    documented in ``TARGET_FIELDS`` or not. A named target that is missing
    from the results raises ``KeyError``, one without the hand axis first
    (size 2) ``ValueError``, both naming the key. An explicit ``gt_keys``
    packs exactly those keys.

    Args:
        meta_keys (Sequence[str]): metainfo keys. Defaults to
            :attr:`DEFAULT_META_KEYS`.
        gt_keys (Sequence[str], optional): per-hand keys for ``gt_hands``.
            Defaults to the keys of ``HAND_FIELDS`` and ``TARGET_FIELDS``
            and every target named in ``results['target_keys']``.
    """

    DEFAULT_META_KEYS = ('img_path', 'img_id', 'sample_idx', 'ori_shape',
                         'img_shape', 'input_size', 'input_center',
                         'input_scale', 'hand_type', 'cam_intrinsics',
                         'ori_cam_intrinsics', 'crop_affine', 'rot_z', 'flip',
                         'flip_left', 'target_conventions')

    def __init__(self,
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS,
                 gt_keys: Optional[Sequence[str]] = None) -> None:
        self.meta_keys = tuple(meta_keys)
        #: named targets (``results['target_keys']``) pass through
        self.pass_targets = gt_keys is None
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
        targets = results.get('target_keys') if self.pass_targets else None
        for key in targets or ():
            if key in gt:
                continue
            if key not in results:
                raise KeyError(
                    f'PackTwoHandInputs: the target "{key}" named in '
                    'results["target_keys"] is not in the results (a '
                    'transform after the target generator removed it?) '
                    f'(img_path={results.get("img_path")})')
            value = _to_tensor(results[key])
            if value.dim() == 0 or value.shape[0] != 2:
                raise ValueError(
                    f'PackTwoHandInputs: the target "{key}" has shape '
                    f'{tuple(value.shape)}; gt_hands holds per-hand fields '
                    'with the hand axis (right, left) first: give it the '
                    'shape (2, ...) (img_path='
                    f'{results.get("img_path")})')
            gt.set_field(value, key)
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
