# Copyright (c) mmhand2p contributors. All rights reserved.
"""Frozen foundation-model teachers that provide A2P's priors (training only).
"""
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmhand2p.utils.letterbox import (INPUT_MODES, letterbox,
                                      unletterbox_features)

__all__ = ['BasePriorTeacher', 'PRIORS', 'check_teacher_checkpoint']

#: the priors A2P distils
PRIORS = ('keypoint', 'segmentation', 'depth')


def check_teacher_checkpoint(path: Optional[str], what: str) -> None:
    """Fail at build time (before training) when a checkpoint is missing."""
    if path is not None and not osp.isfile(osp.expanduser(str(path))):
        raise FileNotFoundError(
            f'{what}: teacher checkpoint {path!r} does not exist. Teachers '
            'are frozen foundation models loaded from local files; give the '
            'path of the downloaded weights (see docs/a2p.md).')


class BasePriorTeacher(nn.Module):
    """A frozen prior extractor: image in, feature map out.

    Subclasses build ``self.model`` and implement :meth:`extract`. The
    teacher is always in eval mode, has ``requires_grad=False`` everywhere and
    runs under ``torch.no_grad``.

    Args:
        prior (str): ``'keypoint'``, ``'segmentation'`` or ``'depth'``.
        input_size (Sequence[int]): (H, W) the teacher expects.
        mean (Sequence[float]): RGB mean on the 0-255 scale.
        std (Sequence[float]): RGB std on the 0-255 scale.
        out_channels (int): channels of the returned feature map.
        input_mode (str): how an image of another size becomes the
            teacher's input: ``'letterbox'`` (default) scales it uniformly
            and pads it (with the mean colour, 0 after normalisation), and
            the feature map is read back over the image only
            (:func:`~mmhand2p.utils.letterbox.unletterbox_features`), so
            the returned map covers the image undistorted; ``'stretch'``
            (the behaviour before issue 19, with which the recorded A2P
            ablations were made) resizes it to ``input_size`` whatever its
            aspect and returns the whole map. Identical when the image
            already has ``input_size`` (the synthetic-world teachers).
    """

    def __init__(self,
                 prior: str,
                 input_size: Sequence[int],
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 out_channels: int = 0,
                 input_mode: str = 'letterbox') -> None:
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f'input_mode must be one of {INPUT_MODES}, '
                             f'got {input_mode!r}')
        self.input_mode = input_mode
        if prior not in PRIORS:
            raise ValueError(f'prior must be one of {PRIORS}, got {prior!r}')
        self.prior = prior
        self.input_size = tuple(int(s) for s in input_size)
        self.out_channels = out_channels
        self.register_buffer(
            'mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
            persistent=False)
        self.register_buffer(
            'std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
            persistent=False)

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> 'BasePriorTeacher':
        return super().train(False)  # always frozen

    def extract(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` normalised images at ``input_size`` ->
        ``(B, C, h, w)`` features."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, rgb: Tensor) -> Tensor:
        """Features of RGB images.

        Args:
            rgb (Tensor): ``(B, 3, H, W)`` float RGB on the 0-255 scale, any
                size (letterboxed or stretched to ``input_size``, see
                ``input_mode``).

        Returns:
            Tensor: ``(B, out_channels, h, w)``; with ``'letterbox'`` the
            map covers the image only (its cells have the image's aspect).
        """
        x = rgb.float()
        src_hw = tuple(x.shape[-2:])
        if src_hw == self.input_size:
            return self.extract((x - self.mean) / self.std)
        if self.input_mode == 'stretch':
            x = F.interpolate(
                x, size=self.input_size, mode='bilinear', align_corners=False)
            return self.extract((x - self.mean) / self.std)
        x = letterbox((x - self.mean) / self.std, self.input_size)
        return unletterbox_features(self.extract(x), src_hw, self.input_size)
