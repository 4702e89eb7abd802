# Copyright (c) mmhand2p contributors. All rights reserved.
"""Dense prior maps (synthetic seg / depth) follow the image exactly."""
import cv2
import numpy as np
import pytest
from _two_hand_synth import IMG_HW, random_info

from mmhand2p.datasets.transforms import (LoadPriorMaps, PackTwoHandInputs,
                                          RandomTwoHandFlip, TwoHandCropAffine)


def _painted(info):
    """Image / seg / depth where each hand's joints are painted as discs:
    image channel 2 = right hand, channel 0 = left; seg 1 / 2; depth z."""
    h, w = IMG_HW
    img = np.zeros((h, w, 3), np.uint8)
    seg = np.zeros((h, w), np.uint8)
    depth = np.zeros((h, w), np.float32)
    for hand, chan in ((0, 2), (1, 0)):
        for (u, v), z in zip(info['joints_2d'][hand],
                             info['joints_3d'][hand, :, 2]):
            c = (int(round(u)), int(round(v)))
            tmp = img[..., chan].copy()
            cv2.circle(tmp, c, 6, 255, -1)
            img[..., chan] = tmp
            cv2.circle(seg, c, 6, hand + 1, -1)
            cv2.circle(depth, c, 6, float(z), -1)
    return img, seg, depth


@pytest.mark.parametrize('flip', [False, True])
def test_maps_follow_image_through_flip_and_crop(flip):
    info = random_info(seed=3)
    img, seg, depth = _painted(info)
    results = dict(info, img=img, gt_seg=seg, gt_depth=depth)
    if flip:
        results = RandomTwoHandFlip(prob=1.0)(results)
    results = TwoHandCropAffine(
        input_size=(192, 192), rotate_range=40, rotate_prob=1.0,
        test_mode=False)(results)
    out = PackTwoHandInputs()(results)
    img_c = out['inputs'].numpy().transpose(1, 2, 0)
    seg_c = out['data_samples'].gt_seg.data[0].numpy()
    depth_c = out['data_samples'].gt_depth.data[0].numpy()
    assert seg_c.shape == (192, 192) and depth_c.shape == (192, 192)
    # after a flip the right-hand paint (channel 2) is the LEFT hand (2)
    right_label, left_label = (2, 1) if flip else (1, 2)
    red = img_c[..., 2] > 200
    blue = img_c[..., 0] > 200
    assert red.sum() > 50 and blue.sum() > 50
    assert (seg_c[red] == right_label).mean() > 0.9
    assert (seg_c[blue] == left_label).mean() > 0.9
    # depth values are carried unchanged (the camera only rotates in-plane)
    zs = info['joints_3d'][..., 2]
    on = depth_c > 0
    assert depth_c[on].min() >= zs.min() - 1e-6
    assert depth_c[on].max() <= zs.max() + 1e-6


def test_load_prior_maps_names_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='image7_seg.png'):
        LoadPriorMaps()(dict(img_path=str(tmp_path / 'image7.jpg'),
                             img_id=7))
