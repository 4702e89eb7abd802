# Copyright (c) mmhand2p contributors. All rights reserved.
"""Teacher inputs are letterboxed, teacher maps read back through the same
letterbox and area-pooled onto the distillation grid (issue 19, item 3)."""
import json
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmhand2p.registry import MODELS
from mmhand2p.utils.feature_cache import (CACHE_FORMAT, PriorFeatureCache,
                                          prior_target, teacher_config_hash)
from mmhand2p.utils.letterbox import (area_resample, area_weights, letterbox,
                                      letterbox_box, letterbox_params,
                                      resize_features, unletterbox_features)


class _Pool(nn.Module):
    """A stand-in teacher of stride ``s``: the mean of each s x s block."""

    def __init__(self, s: int) -> None:
        super().__init__()
        self.s = s

    def forward(self, x):
        return F.avg_pool2d(x, self.s)


def _pool_teacher(tmp_path, input_size, stride, **kw):
    path = str(tmp_path / f'pool{stride}.pt')
    torch.jit.save(torch.jit.script(_Pool(stride)), path)
    return MODELS.build(
        dict(type='ExportedTeacher', prior='depth', checkpoint=path,
             input_size=input_size, out_channels=3, mean=(0, 0, 0),
             std=(1, 1, 1), **kw))


@pytest.mark.parametrize('src, dst, expect', [
    ((256, 256), (1024, 768), (3.0, 0, 128)),
    ((192, 256), (1024, 768), (3.0, 0, 224)),
    ((256, 192), (1024, 768), (4.0, 0, 0)),
    ((128, 128), (128, 128), (1.0, 0, 0)),
    ((100, 200), (1024, 768), (3.84, 0, 320)),
    ((300, 100), (64, 64), (64 / 300, 21, 0)),
])
def test_letterbox_params(src, dst, expect):
    scale, pad_x, pad_y = letterbox_params(src, dst)
    assert scale == pytest.approx(expect[0])
    assert (pad_x, pad_y) == expect[1:]
    top, left, ch, cw = letterbox_box(src, dst)
    assert (top, left) == (pad_y, pad_x)
    assert (ch, cw) == (round(src[0] * scale), round(src[1] * scale))
    img = torch.ones(1, 1, *src)
    out = letterbox(img, dst, value=-1.0)
    assert out.shape[-2:] == dst
    inside = out[..., top:top + ch, left:left + cw]
    assert torch.allclose(inside, torch.ones_like(inside))
    assert out.sum().item() == pytest.approx(ch * cw - (
        dst[0] * dst[1] - ch * cw))


# (crop (h, w), teacher input (H, W), stride): Sapiens' 1024 x 768 input
# (square and non-square crops) and the synthetic teachers' own-size input
@pytest.mark.parametrize('crop, size, stride', [
    ((256, 256), (1024, 768), 16),
    ((192, 256), (1024, 768), 16),
    ((128, 128), (128, 128), 32),
])
def test_a_pixel_maps_to_the_same_cell_both_ways(tmp_path, crop, size,
                                                 stride):
    teacher = _pool_teacher(tmp_path, size, stride)
    top, left, ch, cw = letterbox_box(crop, size)
    grid = (ch // stride, cw // stride)  # the read-back map's cells
    scale = ch / crop[0]
    torch.manual_seed(0)
    ys = torch.randint(0, crop[0], (12, )).tolist()
    xs = torch.randint(0, crop[1], (12, )).tolist()
    for y, x in zip(ys, xs):
        # the cell of the teacher map the pixel centre falls into
        c_y = math.floor((top + (y + 0.5) * scale) / stride)
        c_x = math.floor((left + (x + 0.5) * scale) / stride)
        # the crop-grid cell of the pixel
        g_y = math.floor((y + 0.5) * grid[0] / crop[0])
        g_x = math.floor((x + 0.5) * grid[1] / crop[1])
        # forward: a single bright pixel lands in teacher cell c
        img = torch.zeros(1, 3, *crop)
        img[..., y, x] = 255.
        lb = letterbox(img, size)
        fmap = F.avg_pool2d(lb, stride)[0, 0]
        if crop == size:
            assert torch.equal(lb, img)
        # bilinear upsampling spreads the pixel; its centre's cell holds
        # the most of it
        assert divmod(int(fmap.argmax()), fmap.shape[1]) == (c_y, c_x)
        # backward: teacher cell c reads back as crop-grid cell g
        onehot = torch.zeros(1, 1, size[0] // stride, size[1] // stride)
        onehot[..., c_y, c_x] = 1.0
        back = unletterbox_features(onehot, crop, size)[0, 0]
        assert back.shape == grid
        assert back[g_y, g_x] == 1.0 and back.sum() == 1.0
        # the whole teacher: the pixel comes back in crop-grid cell g
        out = teacher(img)[0, 0]
        assert out.shape == grid
        assert divmod(int(out.argmax()), out.shape[1]) == (g_y, g_x)


def test_synthetic_teacher_letterbox_is_the_identity():
    torch.manual_seed(0)
    new = MODELS.build(dict(type='SyntheticWorldTeacher', prior='depth',
                            input_size=(128, 128)))
    old = MODELS.build(dict(type='SyntheticWorldTeacher', prior='depth',
                            input_size=(128, 128), input_mode='stretch'))
    old.load_state_dict(new.state_dict())
    rgb = torch.rand(2, 3, 128, 128) * 255
    assert torch.equal(new(rgb), old(rgb))
    assert letterbox_params((128, 128), (128, 128)) == (1.0, 0, 0)


def test_letterbox_teacher_sees_an_undistorted_crop(tmp_path):
    """A square crop is padded, not stretched: its 64 x 48 map's rows 8 to
    56 come back as 48 x 48; stretch gives the whole squashed map."""
    lb = _pool_teacher(tmp_path, (1024, 768), 16)
    st = _pool_teacher(tmp_path, (1024, 768), 16, input_mode='stretch')
    # a vertical ramp: the letterboxed map keeps it linear in the crop rows
    ramp = torch.arange(256.).view(1, 1, 256, 1).expand(1, 3, 256, 256)
    out = lb(ramp)[0, 0]
    assert out.shape == (48, 48)
    cells = (torch.arange(48.) + 0.5) * 256 / 48 - 0.5
    assert torch.allclose(out[:, 0], cells, atol=0.05)
    assert st(ramp).shape == (1, 3, 64, 48)


def test_area_pooling_values():
    const = torch.full((1, 2, 48, 48), 3.25)
    assert torch.allclose(resize_features(const, (8, 8)), const[..., :8, :8])
    # a checkerboard finer than the grid: area gives its mean, a point
    # sample (bilinear without antialiasing) does not
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48),
                            indexing='ij')
    board = ((yy + xx) % 2).float().view(1, 1, 48, 48)
    area = resize_features(board, (8, 8), 'area')
    assert torch.allclose(area, torch.full_like(area, 0.5))
    assert torch.allclose(area, F.adaptive_avg_pool2d(board, (8, 8)))
    # 40 -> 8: the area is each 5 x 5 block's mean (12 or 13 of 25 ones),
    # bilinear reads one cell of it (5i + 2, 5j + 2): 0 or 1
    board = board[..., :40, :40]
    area = resize_features(board, (8, 8), 'area')
    i = torch.arange(8)
    parity = ((i[:, None] + i[None]) % 2).float()
    assert torch.allclose(area[0, 0], (12 + parity) / 25)
    bil = resize_features(board, (8, 8), 'bilinear')
    assert torch.equal(bil[0, 0], board[0, 0, 2::5, 2::5])
    assert torch.equal(bil[0, 0], parity)
    # a 3 x 3 grid of a 4 x 4 map: fractional cells, weighted by overlap
    w = area_weights(4, 0, 4, 3)
    assert torch.allclose(w.sum(1), torch.ones(3, dtype=w.dtype))
    assert torch.allclose(w[0], torch.tensor([.75, .25, 0, 0]).double())
    assert torch.allclose(w[1], torch.tensor([0, .5, .5, 0]).double())
    # a fractional box: edges 0.5 to 2.5 of a row ramp (cell j = j) are
    # half of row 0, row 1 and half of row 2: (0 / 2 + 1 + 2 / 2) / 2
    ramp = torch.arange(4.).view(1, 1, 4, 1).expand(1, 1, 4, 2)
    part = area_resample(ramp, (0.5, 0, 2.5, 2), (1, 1))
    assert part.item() == pytest.approx(1.0)
    part = area_resample(ramp, (1.5, 0, 3.5, 2), (1, 1))
    assert part.item() == pytest.approx(2.0)
    # growing falls back to bilinear; the same size is the identity
    assert torch.equal(resize_features(board, (40, 40)), board)
    assert torch.equal(resize_features(board, (80, 80)),
                       F.interpolate(board, (80, 80), mode='bilinear'))
    with pytest.raises(ValueError, match='downsample'):
        resize_features(board, (8, 8), 'nearest')


def test_cached_target_is_area_pooled():
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48),
                            indexing='ij')
    board = ((yy + xx) % 2).double().view(1, 1, 48, 48)
    # 48 -> 8: every 6 x 6 block holds 18 ones; the old bilinear reads
    # between cells 6i + 2 and 6i + 3 (0.5 by luck on this board), so the
    # point sample shows on 40 -> 8 below
    affine = torch.tensor([[[1., 0, 0], [0, 1, 0]]], dtype=torch.float64)
    size = torch.tensor([[256., 256]], dtype=torch.float64)
    kw = dict(cache_affine=affine, cache_size=(256, 256),
              target_affine=affine, target_size=size, size=(8, 8))
    area, _ = prior_target({'depth': board}, **kw)
    assert torch.allclose(area, torch.full_like(area, 0.5))
    board = board[..., :40, :40]
    area, _ = prior_target({'depth': board}, **kw)
    i = torch.arange(8)
    parity = ((i[:, None] + i[None]) % 2).double()
    assert torch.allclose(area[0, 0], (12 + parity) / 25)
    point, _ = prior_target({'depth': board}, downsample='bilinear', **kw)
    assert torch.allclose(point[0, 0], parity)


def test_old_caches_are_refused(tmp_path):
    with open(osp.join(tmp_path, 'index.json'), 'w') as f:
        json.dump(dict(format=CACHE_FORMAT, version=1), f)
    with pytest.raises(ValueError, match='version 1.*letterbox'):
        PriorFeatureCache(str(tmp_path))
    # a config without input_mode hashes as the letterbox it now does
    cfg = dict(type='SapiensTeacher', prior='depth')
    assert teacher_config_hash(cfg) == teacher_config_hash(
        dict(cfg, input_mode='letterbox'))
    assert teacher_config_hash(cfg) != teacher_config_hash(
        dict(cfg, input_mode='stretch'))
