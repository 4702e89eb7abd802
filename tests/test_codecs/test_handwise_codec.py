# Copyright (c) mmhand2p contributors. All rights reserved.
"""Flipping the hand-wise mode's outputs back to the camera frame undoes
HandwiseCropAffine exactly (issue 19 item 1)."""
import copy

import numpy as np
import torch

from mmhand2p.codecs.handwise import (handwise_mano_to_camera,
                                      handwise_points_to_camera)
from mmhand2p.datasets.transforms import HandwiseCropAffine
from mmhand2p.models.body_models import MANOLayer


def _info(seed=0):
    """Random two-hand MANO in front of the camera, joints from the bundled
    model (hand 1 = left model), boxes around the projected joints."""
    rng = np.random.default_rng(seed)
    layer = MANOLayer()
    pose = rng.normal(scale=0.3, size=(2, 16, 3))
    betas = rng.normal(scale=0.5, size=(2, 10))
    transl = np.array([[0.05, 0.0, 0.6], [-0.07, 0.02, 0.65]])
    out = layer(
        pose=torch.from_numpy(pose)[None].float(),
        betas=torch.from_numpy(betas)[None].float(),
        transl=torch.from_numpy(transl)[None].float())
    joints = out.joints[0].double().numpy()
    # J0 of the shaped rest mesh: the root joint, less the translation
    root = out.joints_mano[0, :, 0].double().numpy() - transl
    k = np.array([[500.0, 0.0, 130.0], [0.0, 520.0, 118.0], [0, 0, 1.0]])
    uv = joints @ k.T
    uv = uv[..., :2] / uv[..., 2:]
    boxes = np.concatenate([uv.min(1) - 5, uv.max(1) + 5], -1)
    return dict(
        img_shape=(240, 256),
        cam_intrinsics=k,
        bboxes=boxes.astype(np.float32),
        hand_valid=np.array([True, True]),
        joints_3d=joints.astype(np.float32),
        joints_2d=uv.astype(np.float32),
        joints_2d_valid=np.ones((2, 21), np.float32),
        mano_pose=pose.astype(np.float32),
        mano_betas=betas.astype(np.float32),
        mano_transl=transl.astype(np.float32),
        mano_root_joint=root), layer


def _mano_joints(layer, pose, betas, transl):
    return layer(
        pose=torch.as_tensor(pose, dtype=torch.float32)[None],
        betas=torch.as_tensor(betas, dtype=torch.float32)[None],
        transl=torch.as_tensor(transl, dtype=torch.float32)[None]).joints[0]


def test_flip_back_undoes_handwise_crop_with_augmentation():
    info, layer = _info()
    np.testing.assert_allclose(  # the rest root is a valid J0
        _mano_joints(layer, info['mano_pose'], info['mano_betas'],
                     info['mano_transl']).numpy(), info['joints_3d'],
        atol=1e-6)
    np.random.seed(1)
    crop = HandwiseCropAffine(
        input_size=(64, 64), test_mode=False, rotate_prob=1.0)
    out = crop.transform(copy.deepcopy(info))
    rz = out['rot_z']
    assert not np.allclose(rz[0], rz[1])
    # the crop-frame targets differ from the scene (rotated, mirrored) ...
    assert np.abs(out['joints_3d'] - info['joints_3d']).max() > 0.01
    # ... and flip back exactly: numpy and torch
    back = handwise_points_to_camera(out['joints_3d'].astype(np.float64),
                                     rz.astype(np.float64))
    np.testing.assert_allclose(back, info['joints_3d'], atol=2e-6)
    back_t = handwise_points_to_camera(torch.from_numpy(out['joints_3d']),
                                       torch.from_numpy(rz))
    np.testing.assert_allclose(back_t.numpy(), back, atol=2e-6)
    # MANO: back to the right and left models in the camera frame
    pose, transl = handwise_mano_to_camera(
        torch.from_numpy(out['mano_pose']).double(),
        torch.from_numpy(out['mano_transl']).double(),
        torch.from_numpy(out['mano_root_joint']).double(),
        torch.from_numpy(rz).double())
    np.testing.assert_allclose(transl.numpy(), info['mano_transl'],
                               atol=2e-6)
    np.testing.assert_allclose(pose[:, 1:].numpy(), info['mano_pose'][:, 1:],
                               atol=2e-6)
    joints = _mano_joints(layer, pose, info['mano_betas'], transl)
    np.testing.assert_allclose(joints.numpy(), info['joints_3d'], atol=2e-5)
    # relative translation (left wrist - right wrist) is the scene's
    rel = back[1, 0] - back[0, 0]
    np.testing.assert_allclose(
        rel, info['joints_3d'][1, 0] - info['joints_3d'][0, 0], atol=4e-6)


def test_flip_back_batched_and_differentiable():
    info, _ = _info(seed=2)
    out = HandwiseCropAffine(input_size=(64, 64)).transform(
        copy.deepcopy(info))
    np.testing.assert_array_equal(out['rot_z'], np.stack([np.eye(3)] * 2))
    pts = torch.from_numpy(np.stack([out['joints_3d']] * 3)).double()
    pts.requires_grad_(True)
    rz = torch.from_numpy(np.stack([out['rot_z']] * 3)).double()
    back = handwise_points_to_camera(pts, rz)
    assert back.shape == (3, 2, 21, 3)
    np.testing.assert_allclose(back[1].detach().numpy(), info['joints_3d'],
                               atol=2e-6)
    back[:, 1, :, 0].sum().backward()  # left x comes from -x' (mirror)
    np.testing.assert_allclose(pts.grad[:, 1, :, 0].numpy(), -1.0)
    np.testing.assert_allclose(pts.grad[:, 0].numpy(), 0.0)
    pose, transl = handwise_mano_to_camera(
        torch.from_numpy(np.stack([out['mano_pose']] * 3)).double(),
        torch.from_numpy(np.stack([out['mano_transl']] * 3)).double(),
        torch.from_numpy(np.stack([out['mano_root_joint']] * 3)).double(),
        rz)
    assert pose.shape == (3, 2, 16, 3) and transl.shape == (3, 2, 3)
    np.testing.assert_allclose(pose[2].numpy(), info['mano_pose'], atol=2e-6)
