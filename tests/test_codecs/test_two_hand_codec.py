# Copyright (c) mmhand2p contributors. All rights reserved.
"""TwoHandCodec: target encoding, the decode helpers the heads use, and the
deprecated keywords of the components that used to own its settings."""
import warnings

import numpy as np
import pytest
import torch

from mmhand2p.codecs import (TwoHandCodec, build_codec, left_as_right,
                             resolve_codec)
from mmhand2p.registry import CODECS
from mmhand2p.utils.geometry import axis_angle_to_rot6d, project_points

K = torch.tensor([[300.0, 2.5, 60.0], [0.0, 310.0, 66.0], [0.0, 0.0, 1.0]])
W, H = 128, 96


def _joints(seed=0, n=1):
    g = torch.Generator().manual_seed(seed)
    root = torch.tensor([[0.02, -0.01, 0.6], [0.12, 0.0, 0.64]])
    return root[None, :, None] + 0.05 * torch.randn(n, 2, 21, 3, generator=g)


def _sample(seed=0, with_mano=True):
    """One sample's pipeline results (numpy, float32) for ``encode``."""
    j3d = _joints(seed)[0].double()
    j2d = project_points(j3d, K.double())
    rng = np.random.default_rng(seed)
    out = dict(
        joints_3d=j3d.float().numpy(),
        joints_3d_valid=np.ones((2, 21), np.float32),
        joints_2d=j2d.float().numpy(),
        joints_2d_valid=np.ones((2, 21), np.float32),
        hand_valid=np.array([True, True]))
    if with_mano:
        out.update(
            mano_pose=rng.normal(0, 0.3, (2, 16, 3)).astype(np.float32),
            mano_transl=rng.normal(0, 0.1, (2, 3)).astype(np.float32),
            mano_root_joint=rng.normal(0, 0.01, (2, 3)).astype(np.float32))
    return out


# ---------------------------------------------------------------------------
# construction
# ---------------------------------------------------------------------------
def test_built_from_the_registry_and_validated():
    codec = CODECS.build(
        dict(type='TwoHandCodec', left_as_right=True, depth_range=0.3))
    assert isinstance(codec, TwoHandCodec)
    assert codec.left_as_right is True and codec.depth_range == 0.3
    assert codec.conventions() == dict(
        left_as_right=True,
        depth_range=0.3,
        root_index=0,
        camera_model='perspective')
    assert build_codec(codec) is codec
    assert 'depth_range=0.3' in repr(codec)
    for kwargs, word in ((dict(depth_range=0), 'depth_range'),
                         (dict(crop_extent=-1.0), 'crop_extent'),
                         (dict(root_index=21), 'root_index'),
                         (dict(camera_model='weak'), 'camera_model')):
        with pytest.raises(ValueError, match=word):
            TwoHandCodec(**kwargs)
    with pytest.raises(TypeError, match='TwoHandCodec'):
        build_codec(0.4)
    with pytest.raises(KeyError, match='Close matches: TwoHandCodec'):
        CODECS.build(dict(type='TwoHandCodek'))


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------
def test_encode_values():
    s = _sample(1)
    s['joints_3d_valid'][1, 5] = 0
    s['joints_3d'][0, 7, 2] += 0.3  # outside the depth range
    codec = TwoHandCodec(depth_range=0.4)
    out = codec.encode(**s, input_size=(W, H))
    j3d, j2d = s['joints_3d'].astype(np.float64), s['joints_2d']
    z = j3d[..., 2] - j3d[:, :1, 2]
    np.testing.assert_allclose(out['joints_25d'][..., :2], j2d)
    np.testing.assert_allclose(out['joints_25d'][..., 2], z, atol=1e-7)
    np.testing.assert_allclose(out['joints_25d_norm'][..., 0], j2d[..., 0] / W)
    np.testing.assert_allclose(out['joints_25d_norm'][..., 1], j2d[..., 1] / H)
    np.testing.assert_allclose(
        out['joints_25d_norm'][..., 2], z / 0.4 + 0.5, atol=1e-6)
    valid = np.ones((2, 21), np.float32)
    valid[1, 5] = valid[0, 7] = 0
    np.testing.assert_array_equal(out['joints_25d_valid'], valid)
    np.testing.assert_allclose(
        out['rel_transl'][1], j3d[1, 0] - j3d[0, 0], atol=1e-7)
    np.testing.assert_array_equal(out['rel_transl'][0], 0)
    np.testing.assert_array_equal(out['rel_transl_valid'], [1, 1])
    # no mirroring: the MANO pose is not rewritten, its 6D is added
    assert 'mano_pose' not in out and 'mano_transl' not in out
    np.testing.assert_allclose(
        out['mano_pose_6d'],
        axis_angle_to_rot6d(torch.from_numpy(s['mano_pose']).double()),
        atol=1e-6)
    assert set(out) <= set(TwoHandCodec.target_keys)
    for value in out.values():
        assert value.dtype == np.float32 and value.shape[0] == 2


def test_encode_root_index_and_missing_hand():
    s = _sample(2, with_mano=False)
    s['hand_valid'] = np.array([True, False])
    out = TwoHandCodec(root_index=9, with_rot6d=False).encode(
        **s, input_size=(W, H))
    j3d = s['joints_3d'].astype(np.float64)
    np.testing.assert_allclose(
        out['joints_25d'][..., 2], j3d[..., 2] - j3d[:, 9:10, 2], atol=1e-7)
    assert out['joints_25d'][0, 9, 2] == 0
    np.testing.assert_allclose(
        out['rel_transl'][1], j3d[1, 9] - j3d[0, 9], atol=1e-7)
    # the left hand is absent: no relative translation, no left 2.5D
    np.testing.assert_array_equal(out['rel_transl_valid'], [0, 0])
    assert not out['joints_25d_valid'][1].any()
    assert out['joints_25d_valid'][0].all()
    assert 'mano_pose_6d' not in out


def test_encode_left_as_right_mirrors_the_left_parameters():
    s = _sample(3)
    out = TwoHandCodec(left_as_right=True).encode(**s, input_size=(W, H))
    flip = np.array([1.0, -1.0, -1.0])
    np.testing.assert_array_equal(out['mano_pose'][0], s['mano_pose'][0])
    np.testing.assert_array_equal(out['mano_pose'][1],
                                  s['mano_pose'][1] * flip)
    mirror = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out['mano_transl'][1],
                                  s['mano_transl'][1] * mirror)
    np.testing.assert_array_equal(out['mano_root_joint'][1],
                                  s['mano_root_joint'][1] * mirror)
    np.testing.assert_allclose(
        out['mano_pose_6d'],
        axis_angle_to_rot6d(torch.from_numpy(out['mano_pose']).double()),
        atol=1e-6)
    # the joints' targets do not depend on the convention
    plain = TwoHandCodec().encode(**s, input_size=(W, H))
    for key in ('joints_25d', 'joints_25d_norm', 'rel_transl'):
        np.testing.assert_array_equal(out[key], plain[key])


# ---------------------------------------------------------------------------
# decoding helpers
# ---------------------------------------------------------------------------
def test_network_pose_is_the_left_as_right_mirror():
    pose = 0.4 * torch.randn(3, 2, 16, 3, generator=torch.Generator()
                             .manual_seed(0))
    codec = TwoHandCodec(left_as_right=True)
    net = codec.to_network_pose(pose)
    assert torch.equal(net, left_as_right(pose)[0])
    assert torch.equal(net[:, 0], pose[:, 0])
    assert torch.equal(net[:, 1], pose[:, 1] * torch.tensor([1., -1., -1.]))
    assert torch.equal(codec.from_network_pose(net), pose)
    plain = TwoHandCodec(left_as_right=False)
    assert plain.to_network_pose(pose) is pose
    assert plain.from_network_pose(pose) is pose


def test_project_and_backproject_are_inverse():
    codec = TwoHandCodec()
    k = torch.stack([K, K * torch.tensor([[1.1], [0.9], [1.0]])])
    joints = _joints(4, n=2)
    uv = codec.project(joints, k)
    assert uv.shape == (2, 2, 21, 2)
    for b in range(2):
        np.testing.assert_allclose(
            uv[b].numpy(), project_points(joints[b], k[b]).numpy(),
            rtol=1e-5)
    back = codec.backproject(uv, joints[..., 2], k)
    torch.testing.assert_close(back, joints, atol=1e-5, rtol=0)
    # a single point per sample (B,) works too
    pt = codec.backproject(uv[:, 0, 0], joints[:, 0, 0, 2], k)
    torch.testing.assert_close(pt, joints[:, 0, 0], atol=1e-5, rtol=0)
    # the principal point backprojects onto the optical axis
    c = codec.backproject(k[:, :2, 2], torch.tensor([0.5, 2.0]), k)
    torch.testing.assert_close(
        c, torch.tensor([[0., 0., 0.5], [0., 0., 2.0]]), atol=1e-6, rtol=0)


def test_reference_depth():
    codec = TwoHandCodec(crop_extent=0.2)
    z = codec.reference_depth(K[None], (W, H))
    assert z.shape == (1, )
    assert z.item() == pytest.approx(300.0 * 0.2 / W)
    # at that depth crop_extent metres span the input's width
    edge = codec.backproject(torch.tensor([[0.0, 0.0], [W, 0.0]])[None],
                             z[:, None].expand(1, 2), K[None])
    assert (edge[0, 1, 0] - edge[0, 0, 0]).item() == pytest.approx(0.2)


def test_normalize_25d_matches_encode_and_inverts():
    s = _sample(5, with_mano=False)
    codec = TwoHandCodec(depth_range=0.3, root_index=0)
    target = codec.encode(**s, input_size=(W, H))['joints_25d_norm']
    joints = torch.from_numpy(s['joints_3d'])[None]
    norm = codec.normalize_25d(joints, K[None], (W, H))
    np.testing.assert_allclose(norm[0].numpy(), target, atol=1e-5)
    back = codec.denormalize_25d(norm, joints[..., 0, 2], K[None], (W, H))
    torch.testing.assert_close(back, joints, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------
# the deprecated keywords of the codec's users
# ---------------------------------------------------------------------------
def test_resolve_codec_legacy_keywords():
    defaults = dict(left_as_right=True, depth_range=0.4)
    # nothing given: the former defaults, silently
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        codec = resolve_codec(None, dict(left_as_right=None), defaults, 'X')
    assert codec.left_as_right is True and codec.depth_range == 0.4
    # legacy keywords alone: honoured, deprecated
    with pytest.warns(DeprecationWarning, match=r'X\(depth_range=0.3\)'):
        codec = resolve_codec(None, dict(depth_range=0.3), defaults, 'X')
    assert codec.depth_range == 0.3 and codec.left_as_right is True
    # a codec: used as it is; repeating its value is deprecated
    cfg = dict(type='TwoHandCodec', left_as_right=False, depth_range=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        codec = resolve_codec(cfg, dict(left_as_right=None), defaults, 'X')
    assert codec.left_as_right is False and codec.depth_range == 0.5
    with pytest.warns(DeprecationWarning, match='repeats'):
        resolve_codec(cfg, dict(depth_range=0.5), defaults, 'X')
    # contradicting it is an error naming the keyword and both values
    with pytest.raises(ValueError,
                       match=r'X: left_as_right=True contradicts encoder='
                       r'.*left_as_right=False'):
        resolve_codec(
            cfg, dict(left_as_right=True), defaults, 'X', arg='encoder')
