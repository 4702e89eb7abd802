# Copyright (c) mmhand2p contributors. All rights reserved.
"""Letterboxing an image into a teacher's input and mapping the teacher's
feature map back onto the image, with area (box-filter) downsampling.

A crop of ``src_hw`` is scaled uniformly by ``scale`` to ``content_hw``
(rounded) and placed at integer offsets ``(pad_y, pad_x)`` of the
``dst_hw`` teacher input; the rest is padding. A teacher map of that input
(stride ``dst / map`` per axis) is read back over the content box only and
area-averaged onto the requested grid, so no padding leaks into the
target and a downsampled cell is the mean of the cells it covers (not a
point sample, as bilinear resizing without antialiasing is).

Coordinates: pixel centres at integers, ``align_corners=False``
everywhere (a crop pixel ``x`` covers ``[x, x + 1)`` in edge coordinates).
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'INPUT_MODES', 'DOWNSAMPLE_MODES', 'letterbox_params', 'letterbox_box',
    'letterbox', 'area_weights', 'area_resample', 'resize_features',
    'unletterbox_features'
]

#: how a crop becomes a teacher input (``'stretch'``: the old behaviour)
INPUT_MODES = ('letterbox', 'stretch')
#: how a feature map becomes the distillation grid (``'bilinear'``: old)
DOWNSAMPLE_MODES = ('area', 'bilinear')


def _hw(size: Sequence[int]) -> Tuple[int, int]:
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f'sizes must be positive (h, w), got {size}')
    return h, w


def letterbox_params(src_hw: Sequence[int],
                     dst_hw: Sequence[int]) -> Tuple[float, int, int]:
    """Uniform scale and padding that fit ``src_hw`` into ``dst_hw``.

    Args:
        src_hw: ``(h, w)`` of the image (the crop).
        dst_hw: ``(H, W)`` of the teacher input.

    Returns:
        tuple: ``(scale, pad_x, pad_y)``: the image is resized to
        ``(round(h * scale), round(w * scale))`` and its top-left corner
        placed at ``(pad_x, pad_y)`` (integers, the padding split evenly,
        the odd pixel at the bottom / right).
    """
    (sh, sw), (dh, dw) = _hw(src_hw), _hw(dst_hw)
    scale = min(dh / sh, dw / sw)
    ch, cw = letterbox_box(src_hw, dst_hw)[2:]
    return scale, (dw - cw) // 2, (dh - ch) // 2


def letterbox_box(src_hw: Sequence[int],
                  dst_hw: Sequence[int]) -> Tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the content in the teacher input
    (see :func:`letterbox_params`)."""
    (sh, sw), (dh, dw) = _hw(src_hw), _hw(dst_hw)
    scale = min(dh / sh, dw / sw)
    ch = min(dh, max(1, int(round(sh * scale))))
    cw = min(dw, max(1, int(round(sw * scale))))
    return (dh - ch) // 2, (dw - cw) // 2, ch, cw


def letterbox(img: Tensor, dst_hw: Sequence[int],
              value: float = 0.0) -> Tensor:
    """Resize ``(B, C, h, w)`` images uniformly (bilinear, antialiased
    when shrinking) and pad them with ``value`` to ``dst_hw``."""
    top, left, ch, cw = letterbox_box(img.shape[-2:], dst_hw)
    dh, dw = _hw(dst_hw)
    x = img
    if tuple(x.shape[-2:]) != (ch, cw):
        shrink = ch < x.shape[-2] or cw < x.shape[-1]
        x = F.interpolate(
            x, size=(ch, cw), mode='bilinear', align_corners=False,
            antialias=shrink)
    if (ch, cw) == (dh, dw):
        return x
    return F.pad(x, (left, dw - cw - left, top, dh - ch - top),
                 value=value)


def area_weights(n_in: int, lo: float, hi: float, n_out: int,
                 dtype=torch.float64, device=None) -> Tensor:
    """``(n_out, n_in)`` box-filter weights: output cell ``i`` is the mean
    of the input cells over ``[lo + i * d, lo + (i + 1) * d)``, ``d = (hi -
    lo) / n_out`` (input cell ``j`` spanning ``[j, j + 1)``), each input
    cell weighted by its overlap. Rows sum to 1."""
    if not 0 <= lo < hi <= n_in:
        raise ValueError(f'area_weights: need 0 <= lo < hi <= n_in, got '
                         f'lo={lo}, hi={hi}, n_in={n_in}')
    step = (hi - lo) / n_out
    a = lo + step * torch.arange(n_out, dtype=torch.float64)[:, None]
    j = torch.arange(n_in, dtype=torch.float64)[None]
    overlap = (torch.minimum(a + step, j + 1) - torch.maximum(a, j)).clamp(
        min=0)
    w = overlap / overlap.sum(1, keepdim=True)
    return w.to(dtype=dtype, device=device)


def area_resample(feats: Tensor, box: Sequence[float],
                  out_hw: Sequence[int]) -> Tensor:
    """Area-average the region ``box = (top, left, bottom, right)`` (in
    cell units, fractional allowed) of ``(B, C, h, w)`` maps onto an
    ``out_hw`` grid. The whole map onto a grid dividing it is
    ``F.adaptive_avg_pool2d``; onto its own size, the identity."""
    h, w = feats.shape[-2:]
    top, left, bottom, right = (float(v) for v in box)
    oh, ow = _hw(out_hw)
    if (top, left, bottom, right) == (0, 0, h, w) and (oh, ow) == (h, w):
        return feats
    wy = area_weights(h, top, bottom, oh, feats.dtype, feats.device)
    wx = area_weights(w, left, right, ow, feats.dtype, feats.device)
    return torch.einsum('oh,bchw,pw->bcop', wy, feats, wx)


def resize_features(feats: Tensor, out_hw: Sequence[int],
                    mode: str = 'area') -> Tensor:
    """``(B, C, h, w)`` maps onto ``out_hw``: ``'area'`` averages the
    cells each output cell covers (when shrinking on both axes; growing
    falls back to bilinear, where there is nothing to average);
    ``'bilinear'`` is ``F.interpolate`` without antialiasing (the old
    target: a point sample of the map)."""
    if mode not in DOWNSAMPLE_MODES:
        raise ValueError(f'downsample must be one of {DOWNSAMPLE_MODES}, '
                         f'got {mode!r}')
    oh, ow = _hw(out_hw)
    h, w = feats.shape[-2:]
    if mode == 'area' and oh <= h and ow <= w:
        return area_resample(feats, (0, 0, h, w), (oh, ow))
    if (oh, ow) == (h, w):
        return feats
    return F.interpolate(
        feats, size=(oh, ow), mode='bilinear', align_corners=False)


def unletterbox_features(feats: Tensor, src_hw: Sequence[int],
                         dst_hw: Sequence[int]) -> Tensor:
    """A teacher map of a letterboxed input, read back onto the image.

    The content box of :func:`letterbox_box`, in the map's cells (``h / H``
    cells per input pixel), is area-averaged onto ``(round(content_h *
    h / H), round(content_w * w / W))`` cells: when the box falls on cell
    edges (e.g. a square crop in Sapiens' 1024 x 768 input: rows 8 to 56 of
    64) this is the exact crop of those cells.

    Args:
        feats (Tensor): ``(B, C, h, w)`` on the teacher input ``dst_hw``.
        src_hw: ``(h, w)`` of the image that was letterboxed.
        dst_hw: ``(H, W)`` of the teacher input.

    Returns:
        Tensor: ``(B, C, h', w')`` covering exactly the image.
    """
    top, left, ch, cw = letterbox_box(src_hw, dst_hw)
    dh, dw = _hw(dst_hw)
    h, w = feats.shape[-2:]
    sy, sx = h / dh, w / dw
    box = (top * sy, left * sx, (top + ch) * sy, (left + cw) * sx)
    out = (max(1, int(round(ch * sy))), max(1, int(round(cw * sx))))
    return area_resample(feats, box, out)
