# Copyright (c) mmhand2p contributors. All rights reserved.
"""Image loading that names the file when it fails."""
import os.path as osp
from typing import Dict, Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmhand2p.registry import TRANSFORMS

__all__ = ['LoadTwoHandImage']

_COLOR_FLAGS = {
    'color': cv2.IMREAD_COLOR,
    'grayscale': cv2.IMREAD_GRAYSCALE,
    'unchanged': cv2.IMREAD_UNCHANGED,
}


@TRANSFORMS.register_module()
class LoadTwoHandImage(BaseTransform):
    """Read ``results['img_path']`` into an ``(H, W, 3)`` BGR image.

    The bytes are read with ``mmengine.fileio`` (local paths or any backend
    given by ``backend_args``) and decoded with ``cv2.imdecode`` (which,
    unlike ``cv2.imread``, also reads non-ASCII local paths). A missing file
    raises ``FileNotFoundError`` and an undecodable one ``IOError``, both
    naming the path and the sample's ``img_id``.

    Required keys: ``img_path``.

    Added keys: ``img`` (BGR, uint8 or float32), ``img_shape`` ``(h, w)``,
    ``ori_shape`` if absent.

    Args:
        to_float32 (bool): convert the image to float32. Defaults to False.
        color_type (str): ``'color'`` (3-channel BGR, the pipeline's input),
            ``'grayscale'`` or ``'unchanged'``. Defaults to ``'color'``.
        check_shape (bool): raise if the decoded size differs from the
            annotation's ``ori_shape`` (the intrinsics would not match the
            image). Defaults to True.
        backend_args (dict, optional): ``mmengine.fileio`` backend arguments.
            Defaults to None (local files).
    """

    def __init__(self,
                 to_float32: bool = False,
                 color_type: str = 'color',
                 check_shape: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        if color_type not in _COLOR_FLAGS:
            raise ValueError(f'LoadTwoHandImage: color_type must be one of '
                             f'{sorted(_COLOR_FLAGS)}, got {color_type!r}')
        self.to_float32 = to_float32
        self.color_type = color_type
        self.check_shape = check_shape
        self.backend_args = None if backend_args is None else dict(
            backend_args)

    def transform(self, results: Dict) -> Dict:
        if 'img_path' not in results:
            raise KeyError('LoadTwoHandImage needs results["img_path"] '
                           f'(img_id={results.get("img_id")})')
        path = results['img_path']
        where = f'{path} (img_id={results.get("img_id")})'
        is_local = self.backend_args is None and '://' not in str(path)
        if is_local and not osp.isfile(path):
            raise FileNotFoundError(
                f'LoadTwoHandImage: image file not found: {where}; check the '
                'dataset\'s data_root / data_prefix')
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'LoadTwoHandImage: image file not found: {where}') from e
        img = None
        if data:
            img = cv2.imdecode(
                np.frombuffer(data, np.uint8), _COLOR_FLAGS[self.color_type])
        if img is None:
            raise IOError(f'LoadTwoHandImage: cannot decode the image {where}'
                          f' ({len(data) if data else 0} bytes): the file is '
                          'empty, truncated or not an image')
        if self.to_float32:
            img = img.astype(np.float32)
        h, w = img.shape[:2]
        ori = results.get('ori_shape')
        if self.check_shape and ori is not None and min(ori) > 0 and tuple(
                int(v) for v in ori[:2]) != (h, w):
            raise ValueError(
                f'LoadTwoHandImage: {where} is {h}x{w} (h x w) but the '
                f'annotation says ori_shape={tuple(ori)}: the camera '
                'intrinsics would not match the image (set check_shape=False '
                'to skip this check)')
        results['img'] = img
        results['img_shape'] = (h, w)
        if ori is None:
            results['ori_shape'] = (h, w)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f'color_type={self.color_type!r}, '
                f'check_shape={self.check_shape}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadPriorMaps(BaseTransform):
    """Load the synthetic set's dense ground truth next to an image:
    ``<stem>_seg.png`` (uint8: 0 background, 1 right hand, 2 left hand) and
    ``<stem>_depth.png`` (uint16 camera z in mm, 0 = background).

    Added keys: ``gt_seg`` (H, W) uint8 and ``gt_depth`` (H, W) float32
    metres. Used to train the synthetic-world prior teachers.

    Args:
        seg (bool): load the segmentation. Defaults to True.
        depth (bool): load the depth. Defaults to True.
    """

    def __init__(self, seg: bool = True, depth: bool = True) -> None:
        self.seg = seg
        self.depth = depth

    @staticmethod
    def _read(path: str, img_id) -> np.ndarray:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'prior map {path!r} (image id {img_id}) does not exist; '
                'only the synthetic set ships segmentation / depth maps')
        arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise IOError(f'cannot decode prior map {path!r} (image id '
                          f'{img_id})')
        return arr

    def transform(self, results: Dict) -> Dict:
        stem = osp.splitext(results['img_path'])[0]
        if self.seg:
            results['gt_seg'] = self._read(stem + '_seg.png',
                                           results.get('img_id'))
        if self.depth:
            raw = self._read(stem + '_depth.png', results.get('img_id'))
            results['gt_depth'] = raw.astype(np.float32) / 1000.0
        return results
