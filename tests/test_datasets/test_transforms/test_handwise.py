# Copyright (c) mmhand2p contributors. All rights reserved.
"""Hand-wise crops (issue 19 item 1): each hand from its own box, the left
crop mirrored; the left hand round-trips exactly through flip crop ->
predict -> flip back."""
import copy

import numpy as np
import pytest
import torch

from mmhand2p.codecs import mirror_left_points, right_as_left
from mmhand2p.datasets import InterHand26MDataset
from mmhand2p.datasets.transforms import (HandwiseCropAffine, LoadPriorMaps,
                                          LoadTwoHandImage, TwoHandCropAffine,
                                          apply_affine, compose_affine,
                                          crop_camera, flip_two_hands)
from mmhand2p.datasets.transforms.handwise import (mirror_crop_affine,
                                                   mirror_crop_camera)
from mmhand2p.models.body_models import MANOLayer
from mmhand2p.synthetic import (SEG_LEFT, SEG_RIGHT,
                                generate_synthetic_interhand)
from mmhand2p.utils.geometry import project_points

SIZE = 128  # generated image side
INPUT = (64, 64)


def _project(points, k):
    return project_points(
        torch.from_numpy(np.asarray(points, np.float64)),
        torch.from_numpy(np.asarray(k, np.float64))).numpy()


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    """The first interacting image of a 2-frame synthetic set, loaded with
    its image and prior maps."""
    root = str(tmp_path_factory.mktemp('handwise'))
    generate_synthetic_interhand(
        root, 'val', num_frames=2, num_cams=2, image_size=SIZE, seed=6,
        hand_type_probs=(1.0, 0.0, 0.0), coco_boxes=False)
    dataset = InterHand26MDataset(
        data_root=root, split='val', require_mano=True,
        index_cache_dir=None, test_mode=True)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if np.asarray(info['hand_valid']).all():
            info = LoadPriorMaps().transform(
                LoadTwoHandImage().transform(info))
            return info
    raise AssertionError('no interacting sample generated')


def _crop(info, **kwargs):
    return HandwiseCropAffine(input_size=INPUT, **kwargs).transform(
        copy.deepcopy(info))


def test_crops_cameras_and_3d_targets(sample):
    out = _crop(sample)
    w, h = INPUT
    assert out['img'].shape == (2, h, w, 3)
    assert out['cam_intrinsics'].shape == (2, 3, 3)
    np.testing.assert_array_equal(out['crop_mirrored'], [False, True])
    k = np.asarray(sample['cam_intrinsics'], np.float64)
    # each hand's own (padded, squared) box -> the crop's virtual camera
    box_crop = TwoHandCropAffine(input_size=INPUT, test_mode=True)
    for i in range(2):
        center, size = box_crop.get_box(
            dict(bboxes=sample['bboxes'][i:i + 1], hand_valid=[True]))
        new_k, _, affine = crop_camera(k, center, size, 0.0, INPUT)
        if i == 1:  # mirrored: x' = w - 1 - x, cx' = w - 1 - cx
            affine = compose_affine(mirror_crop_affine(w), affine)
            assert new_k[0, 2] != pytest.approx(w - 1 - new_k[0, 2])
            new_k[0, 2] = w - 1 - new_k[0, 2]
        np.testing.assert_allclose(out['cam_intrinsics'][i], new_k,
                                   rtol=1e-6)
        np.testing.assert_allclose(out['crop_affine'][i], affine, rtol=1e-5,
                                   atol=1e-4)
    # the left crop's warp flips x: its linear part has a negative det
    assert np.linalg.det(out['crop_affine'][1][:, :2]) < 0
    assert np.linalg.det(out['crop_affine'][0][:, :2]) > 0
    # 3D: right unchanged, left mirrored x -> -x (camera not rotated)
    j3d = np.asarray(sample['joints_3d'], np.float64)
    np.testing.assert_allclose(out['joints_3d'][0], j3d[0], atol=1e-7)
    np.testing.assert_allclose(out['joints_3d'][1],
                               j3d[1] * np.array([-1.0, 1.0, 1.0]),
                               atol=1e-7)
    # the crop's 2D joints are the projections of its 3D targets
    for i in range(2):
        np.testing.assert_allclose(
            _project(out['joints_3d'][i], out['cam_intrinsics'][i]),
            out['joints_2d'][i], atol=2e-3)
    assert (out['input_scale'] > 0).all()


def test_left_mano_targets_are_right_model_of_mirrored_hand(sample):
    """Hand 1's MANO targets, run through the *right* model, give the
    mirrored left joints; flipped back they give the scene's left hand."""
    out = _crop(sample)
    layer = MANOLayer()
    pose = torch.from_numpy(out['mano_pose'][1]).expand(1, 2, 16, 3)
    betas = torch.from_numpy(out['mano_betas'][1]).expand(1, 2, 10)
    transl = torch.from_numpy(out['mano_transl'][1]).expand(1, 2, 3)
    as_right = layer(pose=pose, betas=betas, transl=transl).joints[0, 0]
    np.testing.assert_allclose(as_right.numpy(), out['joints_3d'][1],
                               atol=2e-5)
    both = np.stack([out['joints_3d'][0], as_right.numpy()])
    np.testing.assert_allclose(
        mirror_left_points(both)[1], sample['joints_3d'][1], atol=2e-5)


def test_left_joints_land_on_left_hand_in_flipped_crop(sample):
    out = _crop(sample)
    w, h = INPUT
    seg = out['gt_seg']
    assert seg.shape == (2, h, w)
    for i, hand_id in ((0, SEG_RIGHT), (1, SEG_LEFT)):
        uv = _project(out['joints_3d'][i], out['cam_intrinsics'][i])
        px = np.round(uv).astype(int)
        ok = ((px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) &
              (px[:, 1] < h))
        assert ok.sum() >= 18  # the hand is in its own crop
        on_hand = seg[i][px[ok, 1], px[ok, 0]] == hand_id
        assert on_hand.mean() >= 0.6, on_hand
    # the flipped crop is the unflipped left crop mirrored, pixel for pixel
    unflipped = copy.deepcopy(sample)
    unflipped['bboxes'] = unflipped['bboxes'][::-1].copy()  # left box as 0
    plain = _crop(unflipped)['img'][0].astype(int)
    diff = np.abs(out['img'][1].astype(int) - plain[:, ::-1])
    assert diff.max() <= 1 and diff.mean() < 0.05
    # and the hand really is there: its seg pixels are mirrored too
    assert (out['gt_seg'][1] == SEG_LEFT).sum() > 50


def _stand_in_network(crop, k):
    """A deterministic 'hand network': MANO pose from the crop's 4x4 cell
    means, translation back-projected from the crop's brightness centroid
    (so the camera matters) at a depth from the mean intensity."""
    img = crop.astype(np.float64) / 255.0
    h, w = img.shape[:2]
    cells = img.reshape(4, h // 4, 4, w // 4, 3).mean((1, 3)).reshape(16, 3)
    pose = np.tanh(3.0 * (cells - 0.5))
    weight = img.mean(-1) + 1e-3
    ys, xs = np.mgrid[:h, :w]
    u = (weight * xs).sum() / weight.sum()
    v = (weight * ys).sum() / weight.sum()
    z = 0.4 + img.mean()
    transl = z * np.linalg.solve(np.asarray(k, np.float64), [u, v, 1.0])
    return pose, transl


def test_left_hand_round_trips_through_flip(sample):
    """flip crop -> predict -> flip back == predict the mirrored image's
    right hand (the scene mirrored by RandomTwoHandFlip's camera mirror)."""
    out = _crop(sample)
    mirrored = flip_two_hands(copy.deepcopy(sample))  # pending image flip
    out_m = _crop(mirrored)
    # the mirrored scene's right hand is the left hand, seen identically
    np.testing.assert_allclose(out_m['cam_intrinsics'][0],
                               out['cam_intrinsics'][1], rtol=1e-6)
    diff = np.abs(out_m['img'][0].astype(int) - out['img'][1].astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05
    np.testing.assert_allclose(out_m['joints_3d'][0], out['joints_3d'][1],
                               atol=1e-7)
    for key in ('mano_pose', 'mano_transl'):
        np.testing.assert_allclose(out_m[key][0], out[key][1], atol=1e-6)

    def flip_back(pose, transl):  # hand 1 of a pair, right -> left space
        p, t, _ = right_as_left(np.stack([pose, pose]),
                                np.stack([transl, transl]))
        return p[1], t[1]

    # hand-wise mode: predict on the flipped left crop, flip back
    left = flip_back(*_stand_in_network(out['img'][1],
                                        out['cam_intrinsics'][1]))
    # reference: predict the mirrored image's right hand, un-mirror the
    # scene (the same camera-frame mirror)
    ref = flip_back(*_stand_in_network(out_m['img'][0],
                                       out_m['cam_intrinsics'][0]))
    for a, b in zip(left, ref):
        np.testing.assert_allclose(a, b, atol=2e-3)
    # flipping back twice is the identity (the mirror is an involution)
    again = flip_back(*flip_back(*left))
    np.testing.assert_allclose(again[0], left[0], atol=1e-12)
    np.testing.assert_allclose(again[1], left[1], atol=1e-12)


def test_absent_hand_gets_other_box_and_stays_invalid(sample):
    info = copy.deepcopy(sample)
    info['hand_valid'] = np.array([True, False])
    out = _crop(info)
    np.testing.assert_array_equal(out['hand_valid'], [True, False])
    # the left crop is the right hand's crop, mirrored
    w = INPUT[0]
    np.testing.assert_allclose(
        out['crop_affine'][1],
        compose_affine(mirror_crop_affine(w), out['crop_affine'][0]),
        atol=1e-4)
    np.testing.assert_allclose(
        out['cam_intrinsics'][1],
        mirror_crop_camera(out['cam_intrinsics'][0], w), rtol=1e-6)
    # neither hand: both crops are the whole image (centre crop)
    info['hand_valid'] = np.array([False, False])
    out = _crop(info)
    centre = (SIZE - 1) / 2.0
    for i in range(2):
        np.testing.assert_allclose(out['input_center'][i], [centre, centre],
                                   atol=1e-3)
        np.testing.assert_allclose(out['input_scale'][i],
                                   [SIZE * 1.0, SIZE * 1.0], atol=1e-3)
    # the mirrored crop maps the image centre to the crop centre too
    np.testing.assert_allclose(
        apply_affine([centre, centre], out['crop_affine'][1]),
        [(w - 1) / 2.0] * 2, atol=1e-3)


def test_training_augmentation_per_hand_stays_exact(sample):
    """Each hand draws its own shift / scale / rotation; targets stay exact:
    2D = projection of 3D with the crop's camera, hand 1's MANO is the right
    model of its mirrored joints, and rot_z^T M X' flips back to the scene.
    """
    np.random.seed(3)
    t = HandwiseCropAffine(
        input_size=INPUT, test_mode=False, rotate_prob=1.0,
        rotate_range=40.0)
    out = t.transform(copy.deepcopy(sample))
    rz = out['rot_z'].astype(np.float64)
    assert rz.shape == (2, 3, 3)
    angles = np.degrees(np.arctan2(rz[:, 1, 0], rz[:, 0, 0]))
    assert (np.abs(angles) > 0.1).all() and abs(angles[0] - angles[1]) > 0.1
    for i in range(2):
        np.testing.assert_allclose(
            _project(out['joints_3d'][i], out['cam_intrinsics'][i]),
            out['joints_2d'][i], atol=2e-3)
    # flip back: un-mirror hand 1, then undo each hand's rotation
    back = mirror_left_points(out['joints_3d'].astype(np.float64))
    back = np.einsum('hji,hnj->hni', rz, back)  # rz^T
    np.testing.assert_allclose(back, sample['joints_3d'], atol=1e-5)
    layer = MANOLayer()
    for i in range(2):
        as_right = layer(
            pose=torch.from_numpy(out['mano_pose'][i]).expand(1, 2, 16, 3),
            betas=torch.from_numpy(out['mano_betas'][i]).expand(1, 2, 10),
            transl=torch.from_numpy(out['mano_transl'][i]).expand(1, 2,
                                                                  3))
        np.testing.assert_allclose(as_right.joints[0, 0].numpy(),
                                   out['joints_3d'][i], atol=3e-5)
    # the left crop still shows the left hand where its joints project
    uv = np.round(_project(out['joints_3d'][1],
                           out['cam_intrinsics'][1])).astype(int)
    ok = ((uv >= 0) & (uv < INPUT[0])).all(1)
    assert ok.sum() >= 15
    assert (out['gt_seg'][1][uv[ok, 1], uv[ok, 0]] == SEG_LEFT).mean() >= 0.6
    # test mode: no rotation, same frame for both crops
    out = _crop(sample)
    np.testing.assert_array_equal(out['rot_z'], np.stack([np.eye(3)] * 2))
