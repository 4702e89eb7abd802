# Copyright (c) mmhand2p contributors. All rights reserved.
"""Geometric transforms: the virtual-camera model of docs/data_pipeline.md.

Every check compares two independent routes to the same quantity: the
affine of the old 2D joints against the projection of the transformed 3D
joints with the new intrinsics, the MANO mesh of the transformed parameters
against the transformed mesh, and the image warp against the joint affine.
"""
import copy
import math

import numpy as np
import pytest
from _two_hand_synth import (IMG_HW, K_ANISO, K_SQUARE, blob_centroid,
                             blob_image, mano_info, project, random_info,
                             run_mano)
from hypothesis import given, settings
from hypothesis import strategies as st

from mmhand2p.datasets.transforms import (RandomTwoHandFlip, TwoHandCropAffine,
                                          apply_affine, crop_camera,
                                          flip_two_hands, invert_affine)
from mmhand2p.registry import TRANSFORMS

M = np.array([-1.0, 1.0, 1.0])

#: the largest 2D disagreement seen by the property tests (reported)
MAX_ERR = {'proj_vs_affine_px': 0.0, 'inverse_px': 0.0}


def _check_projection(results, atol=0.5):
    """projection of the 3D joints with K' == the 2D joints (all joints,
    valid or not: the geometry holds for every point in front)."""
    uv = project(results['joints_3d'], results['cam_intrinsics'])
    err = np.abs(uv - results['joints_2d']).max()
    MAX_ERR['proj_vs_affine_px'] = max(MAX_ERR['proj_vs_affine_px'], err)
    assert err < atol, err
    return err


@pytest.fixture(scope='module')
def mano_layer():
    from mmhand2p.models.body_models import MANOLayer
    return MANOLayer()


# ---------------------------------------------------------------------------
# crop
# ---------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    theta=st.floats(-math.pi, math.pi),
    scale=st.floats(0.5, 2.0),
    shift=st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3)),
    aniso=st.booleans(),
    out_w=st.sampled_from([256, 192]),
    seed=st.integers(0, 1000))
def test_crop_projection_equals_affine(theta, scale, shift, aniso, out_w,
                                       seed):
    k = K_ANISO if aniso else K_SQUARE
    info = random_info(seed, k)
    before = copy.deepcopy(info)
    t = TwoHandCropAffine(input_size=(out_w, 256), test_mode=True)
    center, size = t.get_box(info)
    assert size[0] / size[1] == pytest.approx(out_w / 256)
    res = t.crop(info, center + np.asarray(shift) * size, size * scale, theta)
    err = _check_projection(res)
    assert err < 1e-2  # float32 storage of ~1e3 px values, not geometry
    # depth is untouched by a rotation about the optical axis
    np.testing.assert_allclose(
        res['joints_3d'][..., 2], before['joints_3d'][..., 2], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(res['joints_3d'], axis=-1),
        np.linalg.norm(before['joints_3d'], axis=-1),
        atol=1e-6)
    # the inverse affine maps the new joints back to the old ones
    back = apply_affine(res['joints_2d'], invert_affine(res['crop_affine']))
    inv_err = np.abs(back - before['joints_2d']).max()
    MAX_ERR['inverse_px'] = max(MAX_ERR['inverse_px'], inv_err)
    assert inv_err < 1e-2
    # bookkeeping
    np.testing.assert_allclose(res['ori_cam_intrinsics'], k, rtol=1e-6)
    np.testing.assert_allclose(
        res['rot_z'][:2, :2],
        [[math.cos(theta), -math.sin(theta)],
         [math.sin(theta), math.cos(theta)]],
        atol=1e-6)
    assert res['img_shape'] == (256, out_w)
    assert res['input_size'] == (out_w, 256)
    # the crop centre lands on the input's centre
    c_in = apply_affine(center + np.asarray(shift) * size, res['crop_affine'])
    np.testing.assert_allclose(c_in, [(out_w - 1) / 2, 127.5], atol=1e-3)
    np.testing.assert_allclose(
        res['input_center'], center + np.asarray(shift) * size, atol=1e-3)


def test_crop_affine_is_k_rz_kinv():
    k = K_ANISO
    new_k, rz, aff = crop_camera(k, (400.0, 300.0), (300.0, 300.0), 0.3,
                                 (256, 256))
    np.testing.assert_allclose(aff, (new_k @ rz @ np.linalg.inv(k))[:2])
    # focal lengths scale by input / box; skew stays 0
    np.testing.assert_allclose(np.diag(new_k)[:2], np.diag(k)[:2] * 256 / 300)
    assert new_k[0, 1] == 0 and new_k[2].tolist() == [0, 0, 1]
    # without rotation the box maps onto the input exactly
    _, _, aff0 = crop_camera(k, (400.0, 300.0), (300.0, 200.0), 0.0,
                             (192, 128))
    corners = np.array([[250.0, 200.0], [550.0, 400.0]])  # box edges
    np.testing.assert_allclose(
        apply_affine(corners, aff0), [[-0.5, -0.5], [191.5, 127.5]], atol=1e-9)


def test_crop_box_is_padded_union_made_square():
    info = random_info(3)
    b = info['bboxes']
    union = np.array(
        [b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
    t = TwoHandCropAffine(padding=1.5, test_mode=True)
    center, size = t.get_box(info)
    np.testing.assert_allclose(center, (union[:2] + union[2:]) / 2)
    assert size[0] == size[1] == pytest.approx(
        1.5 * max(union[2] - union[0], union[3] - union[1]))
    # an absent hand's box is ignored
    info['hand_valid'] = np.array([True, False])
    center, size = t.get_box(info)
    np.testing.assert_allclose(center, (b[0, :2] + b[0, 2:]) / 2)
    # no valid hand: the whole image
    info['hand_valid'] = np.array([False, False])
    center, size = t.get_box(info)
    h, w = IMG_HW
    np.testing.assert_allclose(center, [(w - 1) / 2, (h - 1) / 2])
    assert size[0] == size[1] == w


def test_crop_invalidates_joints_outside_and_keeps_root_joint():
    info = random_info(5)
    root = info['mano_root_joint'].copy()
    b = info['bboxes'][0]
    # a tight crop around the right hand only: the left hand leaves it
    t = TwoHandCropAffine(test_mode=True)
    res = t.crop(info, (b[:2] + b[2:]) / 2, np.full(2, (b[2:] - b[:2]).max()),
                 0.0)
    uv = res['joints_2d']
    inside = ((uv[..., 0] >= 0) & (uv[..., 0] < 256) & (uv[..., 1] >= 0) &
              (uv[..., 1] < 256))
    assert (~inside).any()
    assert not (res['joints_2d_valid'][~inside]).any()
    np.testing.assert_array_equal(res['joints_2d_valid'][inside],
                                  random_info(5)['joints_2d_valid'][inside])
    np.testing.assert_array_equal(res['mano_root_joint'], root)
    # 3D validity is a property of the annotation, not of the crop
    np.testing.assert_array_equal(res['joints_3d_valid'],
                                  random_info(5)['joints_3d_valid'])


def test_crop_boxes_contain_transformed_joints():
    info = random_info(8)
    res = TwoHandCropAffine(
        test_mode=True).crop(info,
                             *TwoHandCropAffine(test_mode=True).get_box(info),
                             0.7)
    for h in range(2):
        m = random_info(8)['joints_2d_valid'][h] > 0
        uv = res['joints_2d'][h, m]
        assert (uv >= res['bboxes'][h, :2] - 1e-3).all()
        assert (uv <= res['bboxes'][h, 2:] + 1e-3).all()


def test_random_crop_deterministic_with_seed_and_in_test_mode():
    cfg = dict(type='TwoHandCropAffine', rotate_prob=1.0)
    t = TRANSFORMS.build(cfg)
    np.random.seed(1)
    a = t(random_info(0))
    np.random.seed(1)
    b = t(random_info(0))
    np.testing.assert_array_equal(a['crop_affine'], b['crop_affine'])
    c = t(random_info(0))
    assert not np.allclose(a['crop_affine'], c['crop_affine'])
    _check_projection(a)
    _check_projection(c)
    tt = TRANSFORMS.build(dict(cfg, test_mode=True))
    d, e = tt(random_info(0)), tt(random_info(0))
    np.testing.assert_array_equal(d['crop_affine'], e['crop_affine'])
    np.testing.assert_allclose(d['rot_z'], np.eye(3))


def test_crop_warps_pixels_where_the_affine_says():
    """A marked (sub-pixel Gaussian) point lands where crop_affine maps it,
    with and without a pending flip, for a rotated anisotropic camera."""
    pts = np.array([[520.3, 300.7], [700.1, 455.2], [611.6, 380.4]])
    for flip in (False, True):
        info = random_info(2, K_ANISO)
        info['img'] = blob_image(pts, sigma=2.5)
        if flip:
            flip_two_hands(info)
        t = TwoHandCropAffine(input_size=(256, 256), test_mode=True)
        center = np.array([610.0, 380.0])
        if flip:
            center[0] = 2 * K_ANISO[0, 2] - center[0]
        res = t.crop(info, center, (420.0, 420.0), 0.6)
        for c in range(3):
            want = apply_affine(pts[c], res['crop_affine'])
            got = blob_centroid(res['img'][..., c])
            assert np.abs(got - want).max() < 0.05, (flip, c, got, want)


def test_crop_mano_mesh_follows_the_camera(mano_layer):
    info = mano_info(mano_layer, seed=1, k=K_ANISO)
    verts0, _ = run_mano(mano_layer, info)
    np.testing.assert_allclose(verts0, info['vertices'], atol=1e-5)
    res = TwoHandCropAffine(
        test_mode=True).crop(info,
                             *TwoHandCropAffine(test_mode=True).get_box(info),
                             -1.1)
    verts, joints = run_mano(mano_layer, res)
    rz = res['rot_z'].astype(np.float64)
    np.testing.assert_allclose(verts, verts0 @ rz.T, atol=1e-5)
    np.testing.assert_allclose(res['vertices'], verts0 @ rz.T, atol=1e-5)
    np.testing.assert_allclose(joints, res['joints_3d'], atol=1e-5)
    _check_projection(res)


# ---------------------------------------------------------------------------
# flip
# ---------------------------------------------------------------------------
def test_flip_is_an_involution():
    info = random_info(4)
    info['hand_type'] = 'right'
    t = RandomTwoHandFlip(prob=1.0)
    once = t(copy.deepcopy(info))
    assert once['flip'] and once['flip_cx'] == pytest.approx(610.0)
    assert once['hand_type'] == 'left'
    twice = t(copy.deepcopy(once))
    assert not twice['flip'] and twice['flip_cx'] is None
    for key, value in info.items():
        if key == 'joints_2d':  # 2 cx - (2 cx - u) rounds in float32
            np.testing.assert_allclose(twice[key], value, atol=1e-4)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(twice[key], value, err_msg=key)
        else:
            assert twice[key] == value, key
    # prob 0 leaves everything as it is
    same = RandomTwoHandFlip(prob=0.0)(copy.deepcopy(info))
    assert not same['flip'] and same['flip_cx'] is None
    np.testing.assert_array_equal(same['joints_3d'], info['joints_3d'])


def test_flip_swaps_and_mirrors():
    info = random_info(6, K_ANISO)
    res = flip_two_hands(copy.deepcopy(info))
    np.testing.assert_array_equal(res['joints_3d'],
                                  (info['joints_3d'] * M)[::-1])
    np.testing.assert_array_equal(res['hand_valid'], info['hand_valid'][::-1])
    np.testing.assert_array_equal(res['mano_pose'],
                                  (info['mano_pose'] * [1, -1, -1])[::-1])
    np.testing.assert_array_equal(res['mano_betas'], info['mano_betas'][::-1])
    np.testing.assert_array_equal(res['mano_root_joint'],
                                  (info['mano_root_joint'] * M)[::-1])
    cx = K_ANISO[0, 2]
    np.testing.assert_allclose(
        res['bboxes'][:, [0, 2]], (2 * cx - info['bboxes'][:, [2, 0]])[::-1],
        atol=1e-4)
    # the 2D joints stay the projection with the unchanged intrinsics
    np.testing.assert_array_equal(res['cam_intrinsics'], K_ANISO)
    _check_projection(res, atol=1e-3)


def test_flip_rejects_skewed_camera():
    info = random_info(0)
    info['cam_intrinsics'] = info['cam_intrinsics'].copy()
    info['cam_intrinsics'][0, 1] = 3.0
    with pytest.raises(ValueError, match='skew'):
        flip_two_hands(info)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), aniso=st.booleans())
def test_flip_then_random_crop_projection(seed, aniso):
    k = K_ANISO if aniso else K_SQUARE
    info = random_info(seed % 97, k)
    before = copy.deepcopy(info)
    np.random.seed(seed)
    res = TRANSFORMS.build(dict(type='TwoHandCropAffine', rotate_prob=1.0))(
        RandomTwoHandFlip(prob=1.0)(info))
    assert res['flip'] and res['flip_cx'] is None
    assert _check_projection(res) < 1e-2
    # crop_affine maps the ORIGINAL image's joints (hands swapped back)
    uv0 = apply_affine(before['joints_2d'], res['crop_affine'])
    np.testing.assert_allclose(uv0[::-1], res['joints_2d'], atol=1e-2)


def test_flip_mano_mesh_is_mirrored_mesh(mano_layer):
    info = mano_info(mano_layer, seed=2)
    verts0, joints0 = run_mano(mano_layer, info)
    res = flip_two_hands(copy.deepcopy(info))
    verts, joints = run_mano(mano_layer, res)
    np.testing.assert_allclose(verts, (verts0 * M)[::-1], atol=1e-5)
    np.testing.assert_allclose(joints, res['joints_3d'], atol=1e-5)
    # the mirrored root is the left model's rest root for the same betas
    np.testing.assert_allclose(
        res['mano_root_joint'][1], info['mano_root_joint'][0] * M, atol=1e-7)
    # then a rotated crop: still the MANO mesh of the params, and projection
    out = TwoHandCropAffine(
        test_mode=True).crop(res,
                             *TwoHandCropAffine(test_mode=True).get_box(res),
                             0.4)
    verts2, joints2 = run_mano(mano_layer, out)
    rz = out['rot_z'].astype(np.float64)
    np.testing.assert_allclose(verts2, (verts0 * M)[::-1] @ rz.T, atol=1e-5)
    np.testing.assert_allclose(joints2, out['joints_3d'], atol=1e-5)
    _check_projection(out)


def test_report_max_error():
    """Runs last in this module: print the largest disagreements seen."""
    print(f'\nmax 2D disagreement: {MAX_ERR}')
    assert MAX_ERR['proj_vs_affine_px'] < 0.5
