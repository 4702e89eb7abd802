# Copyright (c) mmhand2p contributors. All rights reserved.
"""HandwiseTopDownReconstructor and PackHandwiseInputs (issue 19 item 1):
the packed ground truth is the scene's, and the model's flip-back makes the
left hand's prediction equal to the mirrored prediction of the mirrored
image's right hand."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmhand2p.datasets import InterHand26MDataset
from mmhand2p.datasets.transforms import (HandwiseCropAffine, LoadTwoHandImage,
                                          PackHandwiseInputs, flip_two_hands)
from mmhand2p.models.body_models import MANOLayer
from mmhand2p.models.reconstructors import HandwiseTopDownReconstructor
from mmhand2p.registry import MODELS
from mmhand2p.synthetic import generate_synthetic_interhand

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG = osp.join(REPO, HandwiseTopDownReconstructor.smallest_config)


@pytest.fixture(scope='module')
def info(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('handwise_model'))
    generate_synthetic_interhand(
        root, 'test', num_frames=1, num_cams=2, image_size=(192, 256),
        seed=5, hand_type_probs=(1.0, 0.0, 0.0), coco_boxes=False)
    dataset = InterHand26MDataset(
        data_root=root, split='test', require_mano=True,
        index_cache_dir=None, test_mode=True)
    return LoadTwoHandImage().transform(dataset.get_data_info(0))


def _pack(results, **crop):
    crop = HandwiseCropAffine(input_size=(128, 128), **crop)
    return PackHandwiseInputs().transform(crop.transform(results))


def test_pack_gives_scene_ground_truth(info):
    np.random.seed(0)
    packed = _pack(copy.deepcopy(info), test_mode=False, rotate_prob=1.0)
    inputs, ds = packed['inputs'], packed['data_samples']
    assert tuple(inputs.shape) == (3, 128, 256)
    gt = ds.gt_hands
    np.testing.assert_allclose(gt.joints_3d.numpy(), info['joints_3d'],
                               atol=2e-6)
    np.testing.assert_allclose(gt.joints_2d.numpy(), info['joints_2d'],
                               atol=2e-3)
    # boxes: bounds of the rotated-back crop boxes contain the originals
    box, ori = gt.bboxes.numpy(), info['bboxes']
    assert (box[:, :2] <= ori[:, :2] + 1e-3).all()
    assert (box[:, 2:] >= ori[:, 2:] - 1e-3).all()
    # ... and are them exactly without rotation (test mode)
    plain = _pack(copy.deepcopy(info))['data_samples'].gt_hands
    np.testing.assert_allclose(plain.bboxes.numpy(), ori, atol=2e-3)
    np.testing.assert_allclose(plain.joints_3d.numpy(), info['joints_3d'],
                               atol=1e-6)
    joints = MANOLayer()(
        pose=gt.mano_pose[None], betas=gt.mano_betas[None],
        transl=gt.mano_transl[None]).joints[0]
    np.testing.assert_allclose(joints.numpy(), info['joints_3d'], atol=3e-5)
    np.testing.assert_allclose(ds.metainfo['cam_intrinsics'],
                               info['cam_intrinsics'])
    assert tuple(ds.metainfo['img_shape']) == tuple(info['ori_shape'])
    rz = ds.metainfo['handwise_rot_z']
    assert rz.shape == (2, 3, 3) and not np.allclose(rz[0], rz[1])
    k = ds.metainfo['handwise_cam_intrinsics']
    assert k.shape == (2, 3, 3) and k[0, 0, 2] != k[1, 0, 2]


def test_model_flip_back_equals_mirrored_image_prediction(info):
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    # make the shared network's output depend strongly on the crop
    with torch.no_grad():
        model.head.out.weight.normal_(std=0.05)
    a = _pack(copy.deepcopy(info))
    b = _pack(flip_two_hands(copy.deepcopy(info)))  # the mirrored image
    # the left crop of A is the right crop of B, pixel for pixel
    w = a['inputs'].shape[-1] // 2
    diff = (a['inputs'][..., w:].int() - b['inputs'][..., :w].int()).abs()
    assert diff.max() <= 1
    data = model.data_preprocessor(pseudo_collate([a, b]), False)
    with torch.no_grad():
        out = model._hands(data['inputs'], data['data_samples'])
    # split_crops: sample 0's right crop, then its left crop
    crops = model.split_crops(data['inputs'])
    torch.testing.assert_close(crops[1], data['inputs'][0, :, :, w:])
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    rel_a = out['joints_3d'][0, 1] - out['joints_3d'][0, 1, :1]
    rel_b = out['joints_3d'][1, 0] - out['joints_3d'][1, 0, :1]
    assert rel_a.abs().max() > 0.01  # a hand, not a point
    torch.testing.assert_close(rel_a, rel_b * mirror, atol=1e-5, rtol=0)
    torch.testing.assert_close(out['crop_wrists'][0, 1],
                               out['crop_wrists'][1, 0] * mirror,
                               atol=1e-5, rtol=0)
    # the hands of A differ (different crops)
    assert (out['joints_3d'][0, 0] - out['joints_3d'][0, 0, :1] -
            rel_a).abs().max() > 1e-3
    # the left hand is placed at right wrist + rel
    torch.testing.assert_close(
        out['joints_3d'][:, 1, 0] - out['joints_3d'][:, 0, 0],
        out['rel_transl'], atol=1e-6, rtol=0)
    # the predicted MANO parameters reproduce the predicted meshes (right
    # and left models, camera frame)
    mano = MANOLayer()(
        pose=out['mano_pose'].float(), betas=out['mano_betas'].float(),
        transl=out['mano_transl'].float())
    torch.testing.assert_close(mano.joints, out['joints_3d'], atol=2e-5,
                               rtol=0)
