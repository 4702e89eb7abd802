# Copyright (c) mmhand2p contributors. All rights reserved.
import cv2
import numpy as np
import pytest

from mmhand2p.datasets.transforms import LoadTwoHandImage
from mmhand2p.registry import TRANSFORMS


@pytest.fixture
def png(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    path = tmp_path / 'frame.png'
    cv2.imwrite(str(path), img)
    return str(path), img


def test_load_image(png):
    path, img = png
    t = TRANSFORMS.build(dict(type='LoadTwoHandImage'))
    res = t(dict(img_path=path, img_id=3, ori_shape=(40, 60)))
    np.testing.assert_array_equal(res['img'], img)
    assert res['img'].dtype == np.uint8
    assert res['img_shape'] == (40, 60)
    res = LoadTwoHandImage(to_float32=True)(dict(img_path=path))
    assert res['img'].dtype == np.float32 and res['ori_shape'] == (40, 60)


def test_load_non_ascii_path(tmp_path, png):
    path = tmp_path / 'ménage à deux mains.png'
    cv2.imencode('.png', png[1])[1].tofile(str(path))
    res = LoadTwoHandImage()(dict(img_path=str(path)))
    np.testing.assert_array_equal(res['img'], png[1])


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / 'nope' / 'image0042.jpg')
    with pytest.raises(FileNotFoundError) as e:
        LoadTwoHandImage()(dict(img_path=path, img_id=42))
    assert path in str(e.value) and 'img_id=42' in str(e.value)


@pytest.mark.parametrize(
    'content',
    [b'', b'not an image at all', b'\xff\xd8\xff\xe0' + b'\x00' * 20])
def test_undecodable_file_names_the_path(tmp_path, content):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(content)
    with pytest.raises(IOError) as e:
        LoadTwoHandImage()(dict(img_path=str(path), img_id=9))
    assert not isinstance(e.value, FileNotFoundError)
    assert str(path) in str(e.value) and 'decode' in str(e.value)


def test_shape_mismatch_names_the_path(png):
    path, _ = png
    with pytest.raises(ValueError) as e:
        LoadTwoHandImage()(dict(img_path=path, ori_shape=(480, 640)))
    assert path in str(e.value) and 'ori_shape' in str(e.value)
    res = LoadTwoHandImage(check_shape=False)(
        dict(img_path=path, ori_shape=(480, 640)))
    assert res['img_shape'] == (40, 60)


def test_bad_color_type():
    with pytest.raises(ValueError, match='color_type'):
        LoadTwoHandImage(color_type='rgb')
