# Copyright (c) mmhand2p contributors. All rights reserved.
import numpy as np
import pytest
from _two_hand_synth import blob_centroid

from mmhand2p.datasets.transforms import ColorJitter, MotionBlur
from mmhand2p.registry import TRANSFORMS


def _img(seed=0, shape=(48, 64, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


def _run(t, img, seed):
    np.random.seed(seed)
    return t(dict(img=img.copy()))['img']


@pytest.mark.parametrize('cfg', [
    dict(type='ColorJitter', prob=1.0),
    dict(type='MotionBlur', prob=1.0, kernel_size=(5, 9)),
])
def test_shape_dtype_seed(cfg):
    t = TRANSFORMS.build(cfg)
    img = _img()
    a, b, c = _run(t, img, 3), _run(t, img, 3), _run(t, img, 4)
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # same seed, same output
    assert not np.array_equal(a, img)  # it does something
    assert not np.array_equal(a, c)  # and depends on the draw
    f = t(dict(img=img.astype(np.float32)))['img']
    assert f.dtype == np.float32 and f.shape == img.shape


@pytest.mark.parametrize('t', [ColorJitter(prob=0.0), MotionBlur(prob=0.0)])
def test_prob_zero_is_identity(t):
    img = _img(1)
    np.testing.assert_array_equal(_run(t, img, 0), img)


def test_color_jitter_components():
    img = _img(2).astype(np.float32)
    # brightness only, fixed factor 1.5
    t = ColorJitter(
        brightness=(1.5, 1.5), contrast=0, saturation=0, hue=0, prob=1.0)
    np.testing.assert_allclose(
        t(dict(img=img.copy()))['img'], np.clip(img * 1.5, 0, 255), atol=1e-3)
    # saturation 0 turns the image grey (all channels equal)
    t = ColorJitter(
        brightness=0, contrast=0, saturation=(0, 0), hue=0, prob=1.0)
    out = t(dict(img=img.copy()))['img']
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-3)
    # a half-turn hue shift twice is the identity (up to HSV round trips)
    t = ColorJitter(
        brightness=0, contrast=0, saturation=0, hue=(0.5, 0.5), prob=1.0)
    twice = t(t(dict(img=img.copy())))['img']
    np.testing.assert_allclose(twice, img, atol=1e-2)
    with pytest.raises(ValueError, match='hue'):
        ColorJitter(hue=0.7)


@pytest.mark.parametrize('angle', [0.0, 30.0, 90.0, 135.0])
def test_motion_blur_kernel_is_a_centred_line(angle):
    k = MotionBlur.line_kernel(9, angle)
    assert k.shape == (9, 9)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(blob_centroid(k), [4, 4], atol=1e-4)
    # the spread is along the direction: second moments
    yy, xx = np.mgrid[0:9, 0:9] - 4.0
    d = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    along = ((xx * d[0] + yy * d[1])**2 * k).sum()
    across = ((-xx * d[1] + yy * d[0])**2 * k).sum()
    assert along > 5 * across


def test_motion_blur_keeps_constant_and_centroid():
    flat = np.full((30, 30, 3), 77, np.uint8)
    t = MotionBlur(kernel_size=7, prob=1.0)
    np.testing.assert_array_equal(_run(t, flat, 0), flat)
    dot = np.zeros((31, 31, 3), np.float32)
    dot[15, 12] = 255
    out = _run(t, dot, 1)
    np.testing.assert_allclose(blob_centroid(out[..., 0]), [12, 15], atol=1e-3)
    assert (out[..., 0] > 0).sum() >= 5  # spread over the line


def test_missing_image_is_named():
    with pytest.raises(KeyError, match='img'):
        ColorJitter()(dict(img_path='x.jpg'))
