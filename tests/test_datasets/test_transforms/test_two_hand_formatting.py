# Copyright (c) mmhand2p contributors. All rights reserved.
"""Targets, the left-as-right convention and packing."""
import copy

import numpy as np
import pytest
import torch
from _two_hand_synth import (IMG_HW, K_SQUARE, blob_centroid, blob_image,
                             mano_info, random_info, run_mano)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mmcv.transforms import Compose

from mmhand2p.datasets.transforms import (GenerateTwoHandTargets,
                                          PackTwoHandInputs, RandomTwoHandFlip,
                                          TwoHandCropAffine, apply_affine,
                                          left_as_right, mirror_left_points,
                                          right_as_left)
from mmhand2p.structures import HAND_FIELDS, HandDataSample
from mmhand2p.utils.geometry import axis_angle_to_rot6d

M = np.array([-1.0, 1.0, 1.0])
small = st.floats(-3.0, 3.0, allow_nan=False, width=32)


@pytest.fixture(scope='module')
def mano_layer():
    from mmhand2p.models.body_models import MANOLayer
    return MANOLayer()


# ---------------------------------------------------------------------------
# left hands as right hands
# ---------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    pose=arrays(np.float32, (3, 2, 16, 3), elements=small),
    transl=arrays(np.float32, (3, 2, 3), elements=small),
    root=arrays(np.float32, (3, 2, 3), elements=small))
def test_left_as_right_inverse(pose, transl, root):
    fwd = left_as_right(pose, transl, root)
    back = right_as_left(*fwd)
    for x, y in zip((pose, transl, root), back):
        assert isinstance(y, np.ndarray) and y.dtype == x.dtype
        np.testing.assert_array_equal(x, y)
    # the right hand is untouched, the left one mirrored
    np.testing.assert_array_equal(fwd[0][:, 0], pose[:, 0])
    np.testing.assert_array_equal(fwd[0][:, 1], pose[:, 1] * [1, -1, -1])
    np.testing.assert_array_equal(fwd[1][:, 1], transl[:, 1] * M)
    # tensors too, differentiably
    t = torch.from_numpy(pose).requires_grad_()
    out, _, _ = left_as_right(t)
    out.sum().backward()
    assert torch.equal(right_as_left(out)[0], t)
    assert t.grad[:, 1, :, 1].eq(-1).all() and t.grad[:, 0].eq(1).all()


def test_left_as_right_gives_mirror_of_left_mesh(mano_layer):
    info = mano_info(mano_layer, seed=3)
    verts, joints = run_mano(mano_layer, info)  # true left at index 1
    pose, transl, root = left_as_right(info['mano_pose'], info['mano_transl'],
                                       info['mano_root_joint'])
    # run the RIGHT model (index 0 of MANOLayer) on the mirrored left params
    swapped = dict(
        mano_pose=pose[::-1].copy(),
        mano_betas=info['mano_betas'][::-1].copy(),
        mano_transl=transl[::-1].copy())
    verts_r, joints_r = run_mano(mano_layer, swapped)
    np.testing.assert_allclose(verts_r[0], verts[1] * M, atol=1e-5)
    np.testing.assert_allclose(joints_r[0], joints[1] * M, atol=1e-5)
    # un-mirroring the right model's output recovers the left mesh
    both = np.stack([verts[0], verts_r[0]])
    np.testing.assert_allclose(
        mirror_left_points(both)[1], verts[1], atol=1e-5)
    # the mirrored rest root is the right model's rest root for those betas
    with torch.no_grad():
        rest = mano_layer(
            pose=torch.zeros(1, 2, 16, 3),
            betas=torch.from_numpy(swapped['mano_betas'])[None])
    np.testing.assert_allclose(
        root[1], rest.joints_mano[0, 0, 0].numpy(), atol=1e-6)


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------
def _cropped(seed=0):
    info = random_info(seed)
    return TwoHandCropAffine(test_mode=True)(info)


def test_targets_values():
    res = _cropped(1)
    j3d, j2d = res['joints_3d'].copy(), res['joints_2d'].copy()
    out = GenerateTwoHandTargets(depth_range=0.4)(copy.deepcopy(res))
    z = j3d[..., 2] - j3d[:, :1, 2]
    np.testing.assert_allclose(out['joints_25d'][..., :2], j2d)
    np.testing.assert_allclose(out['joints_25d'][..., 2], z, atol=1e-7)
    np.testing.assert_allclose(out['joints_25d_norm'][..., 0],
                               j2d[..., 0] / 256)
    np.testing.assert_allclose(
        out['joints_25d_norm'][..., 2], z / 0.4 + 0.5, atol=1e-6)
    np.testing.assert_array_equal(
        out['joints_25d_valid'],
        res['joints_2d_valid'] * res['joints_3d_valid'] * (np.abs(z) <= 0.2))
    np.testing.assert_allclose(
        out['rel_transl'][1], j3d[1, 0] - j3d[0, 0], atol=1e-7)
    np.testing.assert_array_equal(out['rel_transl'][0], 0)
    np.testing.assert_array_equal(out['rel_transl_valid'], [1, 1])
    np.testing.assert_allclose(
        out['mano_pose_6d'],
        axis_angle_to_rot6d(torch.from_numpy(res['mano_pose']).double()),
        atol=1e-6)
    assert out['flip_left'] is False
    # a missing hand invalidates the relative translation
    res2 = copy.deepcopy(res)
    res2['hand_valid'] = np.array([True, False])
    out2 = GenerateTwoHandTargets()(res2)
    np.testing.assert_array_equal(out2['rel_transl_valid'], [0, 0])
    assert not out2['joints_25d_valid'][1].any()


def test_targets_left_as_right():
    res = _cropped(2)
    out = GenerateTwoHandTargets(left_as_right=True)(copy.deepcopy(res))
    assert out['flip_left'] is True
    np.testing.assert_array_equal(out['mano_pose'][0], res['mano_pose'][0])
    np.testing.assert_array_equal(out['mano_pose'][1],
                                  res['mano_pose'][1] * [1, -1, -1])
    np.testing.assert_array_equal(out['mano_transl'][1],
                                  res['mano_transl'][1] * M)
    np.testing.assert_array_equal(out['mano_root_joint'][1],
                                  res['mano_root_joint'][1] * M)
    np.testing.assert_allclose(
        out['mano_pose_6d'],
        axis_angle_to_rot6d(torch.from_numpy(out['mano_pose']).double()),
        atol=1e-6)
    # joints stay in the true camera frame
    np.testing.assert_array_equal(out['joints_3d'], res['joints_3d'])
    back = right_as_left(out['mano_pose'], out['mano_transl'],
                         out['mano_root_joint'])
    np.testing.assert_array_equal(back[0], res['mano_pose'])


def test_targets_missing_key_names_it():
    res = _cropped(0)
    del res['joints_2d']
    with pytest.raises(KeyError, match='joints_2d'):
        GenerateTwoHandTargets()(res)


# ---------------------------------------------------------------------------
# packing
# ---------------------------------------------------------------------------
def test_pack_fields_and_metainfo():
    info = random_info(0)
    info['img'] = np.random.default_rng(0).integers(
        0, 255, IMG_HW + (3, ), dtype=np.uint8)
    pipeline = Compose([
        dict(type='RandomTwoHandFlip', prob=1.0),
        dict(type='TwoHandCropAffine', test_mode=True, input_size=(192, 256)),
        dict(type='GenerateTwoHandTargets', left_as_right=True),
        dict(type='PackTwoHandInputs'),
    ])
    packed = pipeline(info)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.shape == (3, 256, 192) and inputs.dtype == torch.uint8
    assert isinstance(sample, HandDataSample)
    gt = sample.gt_hands
    assert len(gt) == 2
    for key in ('joints_3d', 'joints_2d', 'joints_3d_valid', 'mano_pose',
                'mano_betas', 'mano_transl', 'mano_valid', 'bboxes',
                'hand_valid', 'joints_25d', 'joints_25d_norm',
                'joints_25d_valid', 'rel_transl', 'rel_transl_valid',
                'mano_pose_6d', 'mano_root_joint'):
        assert key in gt, key
    assert gt.joints_3d.shape == (2, 21, 3)
    assert gt.joints_3d.dtype == torch.float32
    assert gt.hand_valid.dtype == torch.bool
    assert gt.mano_pose_6d.shape == (2, 16, 6)
    meta = sample.metainfo
    for key in ('img_path', 'img_id', 'ori_shape', 'img_shape', 'hand_type',
                'cam_intrinsics', 'ori_cam_intrinsics', 'crop_affine',
                'input_size', 'input_center', 'input_scale', 'rot_z', 'flip',
                'flip_left'):
        assert key in meta, key
    assert meta['flip'] is True and meta['flip_left'] is True
    assert meta['input_size'] == (192, 256)
    assert meta['crop_affine'].shape == (2, 3)
    assert 'joints_3d' not in meta
    # gt fields cover the documented ones that the sample has
    assert set(HAND_FIELDS) - set(gt.keys()) == {'vertices', 'scores'}
    # configurable keys
    packed = PackTwoHandInputs(
        meta_keys=('img_id', ), gt_keys=('joints_3d', ))(
            dict(info, img=info['img']))
    assert set(packed['data_samples'].metainfo) == {'img_id'}
    assert set(packed['data_samples'].gt_hands.keys()) == {'joints_3d'}


def test_pack_applies_pending_flip_without_crop():
    """Flip without crop: Pack flips the image about cx; a blob at a joint's
    pixel ends up at the joint's flipped 2D position."""
    h, w = 120, 161
    k = np.array([[300.0, 0, 80.0], [0, 300.0, 50.0], [0, 0, 1]])
    info = random_info(0, k, (h, w))
    uv = np.array([[70.25, 40.5], [90.0, 61.75]])
    info['img'] = blob_image(uv, (h, w), sigma=1.5).astype(np.float32)
    info['joints_2d'][0, 0] = uv[0]
    flipped = RandomTwoHandFlip(prob=1.0)(info)
    packed = PackTwoHandInputs()(flipped)
    meta = packed['data_samples'].metainfo
    np.testing.assert_allclose(meta['crop_affine'],
                               [[-1, 0, 160.0], [0, 1, 0]])
    assert meta['flip'] is True
    img = packed['inputs'].numpy().transpose(1, 2, 0)
    for c in range(2):
        want = apply_affine(uv[c], meta['crop_affine'])
        np.testing.assert_allclose(blob_centroid(img[..., c]), want, atol=0.02)
    # the joint set to the blob moved with it (and to the other hand)
    np.testing.assert_allclose(
        packed['data_samples'].gt_hands.joints_2d[1, 0], [160.0 - 70.25, 40.5],
        atol=1e-4)
    # cx at the image centre: exactly cv2.flip
    k2 = k.copy()
    k2[0, 2] = (w - 1) / 2
    info = random_info(1, k2, (h, w))
    img = np.random.default_rng(1).integers(0, 255, (h, w, 3), np.uint8)
    info['img'] = img
    packed = PackTwoHandInputs()(RandomTwoHandFlip(prob=1.0)(info))
    np.testing.assert_array_equal(packed['inputs'].numpy(),
                                  img[:, ::-1].transpose(2, 0, 1))


def test_pack_without_geometry_fills_identity_meta():
    info = random_info(0)
    info['img'] = np.zeros(IMG_HW + (3, ), np.uint8)
    meta = PackTwoHandInputs()(info)['data_samples'].metainfo
    np.testing.assert_array_equal(meta['crop_affine'], np.eye(2, 3))
    np.testing.assert_array_equal(meta['ori_cam_intrinsics'],
                                  meta['cam_intrinsics'])
    np.testing.assert_array_equal(meta['cam_intrinsics'], K_SQUARE)
    assert meta['flip'] is False and meta['flip_left'] is False
    assert meta['input_size'] == (IMG_HW[1], IMG_HW[0])


def test_pack_needs_image():
    with pytest.raises(KeyError, match='img'):
        PackTwoHandInputs()(random_info(0))


def test_real_frames_full_pipeline(shared_fixtures):
    """Real InterHand2.6M frames through the whole training pipeline: the
    packed 2D joints are the crop affine of the annotation's and the
    projection of the packed 3D joints with the packed intrinsics."""
    import os.path as osp

    from mmhand2p.registry import DATASETS
    from mmhand2p.utils.geometry import project_points
    root = osp.join(shared_fixtures, 'interhand26m')
    ds = DATASETS.build(
        dict(
            type='InterHand26MDataset',
            data_root=root,
            ann_file='test_interhand2.6m_data.json',
            camera_file='test_interhand2.6m_camera.json',
            joint_file='test_interhand2.6m_joint_3d.json',
            img_prefix=root,
            test_mode=True))
    pipeline = Compose([
        dict(type='LoadTwoHandImage'),
        dict(type='RandomTwoHandFlip', prob=0.5),
        dict(type='TwoHandCropAffine', rotate_prob=1.0),
        dict(type='ColorJitter'),
        dict(type='MotionBlur'),
        dict(type='GenerateTwoHandTargets'),
        dict(type='PackTwoHandInputs'),
    ])
    np.random.seed(0)
    flips = set()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        ori_2d = info['joints_2d'].copy()
        out = pipeline(info)
        assert out['inputs'].shape == (3, 256, 256)
        meta, gt = out['data_samples'].metainfo, out['data_samples'].gt_hands
        flips.add(meta['flip'])
        uv = apply_affine(ori_2d, meta['crop_affine'])
        if meta['flip']:
            uv = uv[::-1]
        np.testing.assert_allclose(uv, gt.joints_2d.numpy(), atol=1e-2)
        proj = project_points(
            gt.joints_3d.double(),
            torch.from_numpy(meta['cam_intrinsics']).double())
        assert (proj - gt.joints_2d).abs().max() < 1e-2
    assert flips == {True, False}


def test_flip_after_crop_is_applied_by_pack():
    """Discouraged order (pixels are lost), but still exact: the pending
    flip about the crop's principal point is applied and composed by Pack."""
    pts = np.array([[560.5, 350.25], [640.0, 400.0]])
    info = random_info(0)
    info['img'] = blob_image(pts, sigma=2.0)
    res = TwoHandCropAffine(test_mode=True).crop(info, (600.0, 375.0),
                                                 (300.0, 300.0), 0.3)
    res = RandomTwoHandFlip(prob=1.0)(res)
    packed = PackTwoHandInputs()(res)
    meta = packed['data_samples'].metainfo
    img = packed['inputs'].numpy().transpose(1, 2, 0)
    for c in range(2):
        np.testing.assert_allclose(
            blob_centroid(img[..., c]),
            apply_affine(pts[c], meta['crop_affine']),
            atol=0.05)


# ---------------------------------------------------------------------------
# the codec (encoder=codec) and named targets
# ---------------------------------------------------------------------------
CODEC = dict(type='TwoHandCodec', left_as_right=True, depth_range=0.3)


def test_targets_from_the_codec_equal_the_former_keywords():
    res = _cropped(3)
    with pytest.warns(DeprecationWarning, match='GenerateTwoHandTargets'):
        old = GenerateTwoHandTargets(left_as_right=True, depth_range=0.3)
    new = GenerateTwoHandTargets(encoder=CODEC)
    assert repr(new.encoder) in repr(new)
    assert (new.left_as_right, new.depth_range, new.root_index,
            new.with_rot6d) == (True, 0.3, 0, True)
    a, b = old(copy.deepcopy(res)), new(copy.deepcopy(res))
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert b['flip_left'] is True
    assert b['target_conventions'] == dict(
        left_as_right=True,
        depth_range=0.3,
        root_index=0,
        camera_model='perspective')
    assert b['target_keys'] == [
        'joints_25d', 'joints_25d_norm', 'joints_25d_valid', 'rel_transl',
        'rel_transl_valid', 'mano_pose', 'mano_transl', 'mano_root_joint',
        'mano_pose_6d'
    ]
    np.testing.assert_allclose(
        b['joints_25d_norm'][..., 2],
        (res['joints_3d'][..., 2] - res['joints_3d'][:, :1, 2]) / 0.3 + 0.5,
        atol=1e-6)
    # a keyword contradicting the codec is refused, naming it
    with pytest.raises(ValueError, match='depth_range=0.4 contradicts'):
        GenerateTwoHandTargets(encoder=CODEC, depth_range=0.4)


def test_pack_passes_named_targets_through():
    info = random_info(0)
    info['img'] = np.zeros(IMG_HW + (3, ), np.uint8)
    res = GenerateTwoHandTargets(encoder=CODEC)(
        TwoHandCropAffine(test_mode=True)(info))
    # a later transform adds a target no field table documents
    res['hand_heatmap_peak'] = np.arange(6, dtype=np.float32).reshape(2, 3)
    res['target_keys'] = res['target_keys'] + ['hand_heatmap_peak']
    packed = PackTwoHandInputs()(copy.deepcopy(res))
    sample = packed['data_samples']
    gt = sample.gt_hands
    for key in res['target_keys']:
        assert key in gt, key
    np.testing.assert_array_equal(gt.hand_heatmap_peak.numpy(),
                                  res['hand_heatmap_peak'])
    assert 'target_keys' not in sample.metainfo
    assert sample.metainfo['target_conventions']['depth_range'] == 0.3
    # undeclared extras are not packed
    extra = dict(copy.deepcopy(res), stray=np.ones((2, 3), np.float32))
    assert 'stray' not in PackTwoHandInputs()(extra)['data_samples'].gt_hands
    # a named target that went missing, or has no hand axis: named errors
    gone = copy.deepcopy(res)
    del gone['hand_heatmap_peak']
    with pytest.raises(KeyError, match='hand_heatmap_peak'):
        PackTwoHandInputs()(gone)
    flat = copy.deepcopy(res)
    flat['hand_heatmap_peak'] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r'"hand_heatmap_peak" has shape'):
        PackTwoHandInputs()(flat)
    # an explicit gt_keys packs exactly those
    only = PackTwoHandInputs(gt_keys=('joints_3d', 'mano_pose_6d'))(
        copy.deepcopy(res))['data_samples'].gt_hands
    assert set(only.keys()) == {'joints_3d', 'mano_pose_6d'}
