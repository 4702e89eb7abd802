# Copyright (c) mmhand2p contributors. All rights reserved.
"""Photometric augmentations (numpy / cv2 only; geometry is untouched)."""
from typing import Dict, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmhand2p.registry import TRANSFORMS

__all__ = ['ColorJitter', 'MotionBlur']


def _to_range(value: Union[float, Sequence[float]], name: str,
              center: float) -> Tuple[float, float]:
    """``v`` -> ``(center - v, center + v)``; a pair is kept."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f'ColorJitter: {name} must be >= 0, got {value}')
        return (center - float(value), center + float(value))
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f'ColorJitter: {name} must be a number or (min, '
                         f'max), got {value}')
    return float(value[0]), float(value[1])


def _check_img(results: Dict, name: str) -> np.ndarray:
    img = results.get('img')
    if img is None:
        raise KeyError(
            f'{name} needs results["img"]; put it after '
            f'LoadTwoHandImage (img_path={results.get("img_path")})')
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'{name} expects an (H, W, 3) BGR image, got shape '
                         f'{img.shape} (img_path={results.get("img_path")})')
    return img


def _cast_back(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    img = np.clip(img, 0, 255)
    if dtype == np.uint8:
        return (img + 0.5).astype(np.uint8)  # round half up
    return img.astype(dtype)


@TRANSFORMS.register_module()
class ColorJitter(BaseTransform):
    """Random brightness, contrast, saturation and hue of a BGR image.

    With probability ``prob`` the four adjustments are applied in a random
    order, each with a factor drawn uniformly: brightness multiplies the
    image; contrast blends it with its mean grey level; saturation blends it
    with its grey image; hue rotates the HSV hue by a fraction of a full
    turn. Randomness comes from ``np.random`` (seeded per worker by
    mmengine), so a seed makes it deterministic.

    Required keys: ``img`` (H, W, 3) BGR, uint8 (or float in [0, 255]).

    Modified keys: ``img`` (same shape and dtype).

    Args:
        brightness (float | Sequence[float]): ``b`` for factors in
            ``[1 - b, 1 + b]`` or ``(min, max)``. Defaults to 0.2.
        contrast (float | Sequence[float]): same for contrast. Defaults to
            0.2.
        saturation (float | Sequence[float]): same for saturation. Defaults
            to 0.2.
        hue (float | Sequence[float]): ``h`` for hue shifts in ``[-h, h]``
            turns (``h <= 0.5``) or ``(min, max)``. Defaults to 0.02.
        prob (float): probability of jittering. Defaults to 0.8.
    """

    def __init__(self,
                 brightness: Union[float, Sequence[float]] = 0.2,
                 contrast: Union[float, Sequence[float]] = 0.2,
                 saturation: Union[float, Sequence[float]] = 0.2,
                 hue: Union[float, Sequence[float]] = 0.02,
                 prob: float = 0.8) -> None:
        self.brightness = _to_range(brightness, 'brightness', 1.0)
        self.contrast = _to_range(contrast, 'contrast', 1.0)
        self.saturation = _to_range(saturation, 'saturation', 1.0)
        self.hue = _to_range(hue, 'hue', 0.0)
        for name in ('brightness', 'contrast', 'saturation'):
            if getattr(self, name)[0] < 0:
                raise ValueError(f'ColorJitter: {name} factors must be >= 0,'
                                 f' got the range {getattr(self, name)}')
        if max(abs(h) for h in self.hue) > 0.5:
            raise ValueError('ColorJitter: hue shifts must lie in [-0.5, '
                             f'0.5] turns, got {self.hue}')
        self.prob = prob

    @cache_randomness
    def _sample(self) -> Tuple[bool, np.ndarray, np.ndarray]:
        do = bool(np.random.rand() < self.prob)
        order = np.random.permutation(4)
        factors = np.array([
            np.random.uniform(*self.brightness),
            np.random.uniform(*self.contrast),
            np.random.uniform(*self.saturation),
            np.random.uniform(*self.hue)
        ])
        return do, order, factors

    def transform(self, results: Dict) -> Dict:
        img = _check_img(results, 'ColorJitter')
        do, order, factors = self._sample()
        if not do:
            return results
        dtype = img.dtype
        out = img.astype(np.float32)
        for op in order:
            f = float(factors[op])
            if op == 0:
                out = out * f
            elif op == 1:
                mean = cv2.cvtColor(
                    np.clip(out, 0, 255).astype(np.float32),
                    cv2.COLOR_BGR2GRAY).mean()
                out = (out - mean) * f + mean
            elif op == 2:
                gray = cv2.cvtColor(
                    np.clip(out, 0, 255).astype(np.float32),
                    cv2.COLOR_BGR2GRAY)[..., None]
                out = (out - gray) * f + gray
            elif f != 0.0:
                # float HSV: H in degrees [0, 360), S and V in [0, 1]
                hsv = cv2.cvtColor(
                    np.clip(out, 0, 255).astype(np.float32) / 255.0,
                    cv2.COLOR_BGR2HSV)
                hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * f, 360.0)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.0
        results['img'] = _cast_back(out, dtype)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness={self.brightness}, '
                f'contrast={self.contrast}, saturation={self.saturation}, '
                f'hue={self.hue}, prob={self.prob})')


@TRANSFORMS.register_module()
class MotionBlur(BaseTransform):
    """Linear motion blur in a random direction.

    With probability ``prob`` the image is convolved with a normalised line
    kernel of odd length drawn from ``kernel_size`` and a direction drawn
    uniformly from ``angle_range`` (degrees, 0 = horizontal). The geometry
    is unchanged (the kernel is centred), so joints need no update.

    Required keys: ``img``.

    Modified keys: ``img`` (same shape and dtype).

    Args:
        kernel_size (int | Sequence[int]): ``(min, max)`` length in pixels
            (odd lengths are used: an even draw is rounded up), or a single
            length. Defaults to ``(3, 9)``.
        angle_range (Sequence[float]): ``(min, max)`` direction in degrees.
            Defaults to ``(0, 180)``.
        prob (float): probability of blurring. Defaults to 0.3.
    """

    def __init__(self,
                 kernel_size: Union[int, Sequence[int]] = (3, 9),
                 angle_range: Sequence[float] = (0.0, 180.0),
                 prob: float = 0.3) -> None:
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        if len(kernel_size) != 2 or kernel_size[0] < 1 or \
                kernel_size[0] > kernel_size[1]:
            raise ValueError('MotionBlur: kernel_size must be a positive int '
                             f'or (min, max), got {kernel_size}')
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.angle_range = (float(angle_range[0]), float(angle_range[1]))
        self.prob = prob

    @staticmethod
    def line_kernel(length: int, angle: float) -> np.ndarray:
        """A normalised ``(length, length)`` line kernel through the centre.

        Args:
            length (int): odd kernel side (and line length) in pixels.
            angle (float): direction in degrees (0 = horizontal, positive
                turns towards +y, i.e. downwards in the image).

        Returns:
            np.ndarray: float32 kernel summing to 1.
        """
        if length <= 1:
            return np.ones((1, 1), np.float32)
        # splat densely sampled points of the segment bilinearly: the
        # kernel's centroid is exactly its centre, whatever the angle
        c = (length - 1) / 2.0
        t = np.linspace(-c, c, 16 * length + 1)
        rad = np.radians(angle)
        x, y = c + t * np.cos(rad), c + t * np.sin(rad)
        x0 = np.clip(np.floor(x), 0, length - 2).astype(int)
        y0 = np.clip(np.floor(y), 0, length - 2).astype(int)
        fx, fy = x - x0, y - y0
        kernel = np.zeros((length, length), np.float64)
        np.add.at(kernel, (y0, x0), (1 - fx) * (1 - fy))
        np.add.at(kernel, (y0, x0 + 1), fx * (1 - fy))
        np.add.at(kernel, (y0 + 1, x0), (1 - fx) * fy)
        np.add.at(kernel, (y0 + 1, x0 + 1), fx * fy)
        return (kernel / kernel.sum()).astype(np.float32)

    @cache_randomness
    def _sample(self) -> Tuple[bool, int, float]:
        do = bool(np.random.rand() < self.prob)
        length = int(
            np.random.randint(self.kernel_size[0], self.kernel_size[1] + 1))
        length += 1 - length % 2  # odd, so that the kernel has a centre
        angle = float(np.random.uniform(*self.angle_range))
        return do, length, angle

    def transform(self, results: Dict) -> Dict:
        img = _check_img(results, 'MotionBlur')
        do, length, angle = self._sample()
        if not do or length <= 1:
            return results
        kernel = self.line_kernel(length, angle)
        out = cv2.filter2D(
            img.astype(np.float32),
            -1,
            kernel,
            borderType=cv2.BORDER_REFLECT_101)
        results['img'] = _cast_back(out, img.dtype)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(kernel_size={self.kernel_size}, '
                f'angle_range={self.angle_range}, prob={self.prob})')
