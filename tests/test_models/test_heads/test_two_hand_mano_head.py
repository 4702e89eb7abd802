# Copyright (c) mmhand2p contributors. All rights reserved.
import math

import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.models.body_models import MANOLayer
from mmhand2p.registry import MODELS
from mmhand2p.structures import HandDataSample
from mmhand2p.utils.geometry import axis_angle_to_rot6d, mirror_axis_angle

W = H = 128
K = torch.tensor([[300.0, 0, 60.0], [0, 310.0, 66.0], [0, 0, 1]])


@pytest.fixture(scope='module')
def head():
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='TwoHandMANOHead', in_channels=32, num_heads=4,
             ffn_dims=64, crop_extent=0.25))


def _truth(seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(1, 2, 16, 3, generator=g)
    betas = torch.randn(1, 2, 10, generator=g)
    roots = torch.tensor([[[0.02, -0.01, 0.6], [0.12, 0.0, 0.62]]])
    local = MANOLayer()(pose=pose, betas=betas)
    joints = local.joints - local.joints[:, :, :1] + roots[:, :, None]
    return pose, betas, roots, joints


def _encode(head, pose, betas, roots):
    """Raw head outputs that decode to the given camera-frame hands."""
    net_pose = pose.clone()
    if head.left_as_right:
        net_pose[:, 1] = mirror_axis_angle(pose[:, 1])
    r = roots[0, 0]
    u = K[0, 0] * r[0] / r[2] + K[0, 2]
    v = K[1, 1] * r[1] / r[2] + K[1, 2]
    z_ref = K[0, 0] * head.crop_extent / W
    cam = torch.stack([(u - (W - 1) / 2) / (W / 2), (v - (H - 1) / 2) /
                       (H / 2), torch.log(r[2] / z_ref)])[None]
    return dict(
        pose_6d=axis_angle_to_rot6d(net_pose),
        betas=betas,
        cam=cam,
        rel_transl=(roots[:, 1] - roots[:, 0]))


def test_decode_reproduces_camera_frame_hands(head):
    pose, betas, roots, joints = _truth()
    dec = head.decode(_encode(head, pose, betas, roots), K[None], (W, H))
    assert torch.allclose(dec['joints'], joints, atol=1e-5)
    assert torch.allclose(dec['root'], roots, atol=1e-6)
    assert torch.allclose(dec['pose'], pose, atol=1e-5)  # left un-mirrored
    # transl reproduces the mesh through MANOLayer
    again = MANOLayer()(pose=dec['pose'], betas=betas, transl=dec['transl'])
    assert torch.allclose(again.vertices, dec['vertices'], atol=1e-6)


def _sample(head, pose, betas, joints):
    net_pose = pose.clone()
    net_pose[:, 1] = mirror_axis_angle(pose[:, 1])  # left_as_right targets
    uvw = torch.einsum('ij,hnj->hni', K, joints[0] / joints[0, ..., 2:3])
    rel_z = joints[0, ..., 2] - joints[0, :, :1, 2]
    ds = HandDataSample(
        metainfo=dict(cam_intrinsics=K.numpy(), input_size=(W, H),
                      flip_left=True))
    ds.gt_hands = InstanceData(
        hand_valid=torch.ones(2, dtype=torch.bool),
        mano_valid=torch.ones(2, dtype=torch.bool),
        mano_pose_6d=axis_angle_to_rot6d(net_pose[0]),
        mano_betas=betas[0],
        joints_3d=joints[0],
        joints_3d_valid=torch.ones(2, 21),
        joints_25d_norm=torch.stack(
            [uvw[..., 0] / W, uvw[..., 1] / H, rel_z / 0.4 + 0.5], -1),
        joints_25d_valid=torch.ones(2, 21),
        rel_transl=joints[0, :, 0] - joints[0, :1, 0],
        rel_transl_valid=torch.ones(2))
    return ds


def test_losses_vanish_at_the_truth_and_see_errors(head, monkeypatch):
    pose, betas, roots, joints = _truth(1)
    preds = _encode(head, pose, betas, roots)
    sample = _sample(head, pose, betas, joints)
    monkeypatch.setattr(head, 'forward', lambda feats: preds)
    losses = head.loss(None, [sample])
    assert set(losses) == {'loss_pose', 'loss_betas', 'loss_joints_3d',
                           'loss_joints_25d', 'loss_rel_transl'}
    for name, value in losses.items():
        assert value.item() < 1e-5, name
    # bend the left index MCP by 0.5 rad: pose and 3D/2.5D losses react,
    # the relative translation does not
    bent = dict(preds)
    bent['pose_6d'] = preds['pose_6d'].clone()
    bent_pose = pose.clone()
    bent_pose[0, 1, 1, 2] += 0.5
    bent['pose_6d'][0, 1, 1] = axis_angle_to_rot6d(
        mirror_axis_angle(bent_pose[0, 1, 1]))
    monkeypatch.setattr(head, 'forward', lambda feats: bent)
    losses = head.loss(None, [sample])
    assert losses['loss_pose'] > 1e-3 and losses['loss_joints_3d'] > 1e-3
    assert losses['loss_rel_transl'] < 1e-5


def test_flip_left_mismatch_is_an_error(head):
    pose, betas, roots, joints = _truth()
    sample = _sample(head, pose, betas, joints)
    sample.set_metainfo(dict(flip_left=False))
    with pytest.raises(ValueError, match='left_as_right'):
        head.loss(torch.zeros(1, 32, 4, 4), [sample])


def test_predict_fields(head):
    pose, betas, roots, joints = _truth()
    sample = _sample(head, pose, betas, joints)
    out = head.predict(torch.randn(1, 32, 4, 4), [sample])[0]
    assert out.joints_3d.shape == (2, 21, 3)
    assert out.vertices.shape == (2, 778, 3)
    # 2D joints are the projections of the 3D ones
    uv = out.joints_3d[..., :2] / out.joints_3d[..., 2:] * torch.tensor(
        [K[0, 0], K[1, 1]]) + K[:2, 2]
    assert torch.allclose(out.joints_2d, uv, atol=1e-4)
    # untrained: right wrist at the crop centre, reference depth
    r = out.joints_3d[0, 0]
    assert r[2].item() == pytest.approx(
        K[0, 0].item() * 0.25 / W, rel=0.05)
    assert not math.isnan(out.vertices.sum().item())


# ---------------------------------------------------------------------------
# the codec (decoder=codec) and the deprecated keywords
# ---------------------------------------------------------------------------
CODEC = dict(
    type='TwoHandCodec', left_as_right=True, depth_range=0.4, crop_extent=0.25)
SMALL = dict(type='TwoHandMANOHead', in_channels=32, num_heads=4, ffn_dims=64)


def test_decoder_codec_equals_the_former_keywords():
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match='TwoHandMANOHead'):
        old = MODELS.build(
            dict(SMALL, left_as_right=True, crop_extent=0.2, depth_range=0.3))
    torch.manual_seed(0)
    new = MODELS.build(
        dict(SMALL, decoder=dict(CODEC, crop_extent=0.2, depth_range=0.3)))
    settings = (new.left_as_right, new.crop_extent, new.depth_range)
    assert settings == (True, 0.2, 0.3)
    assert old.codec.conventions() == new.codec.conventions()
    assert old.crop_extent == new.crop_extent
    sd_old, sd_new = old.state_dict(), new.state_dict()
    assert list(sd_old) == list(sd_new)
    assert all(torch.equal(sd_old[k], sd_new[k]) for k in sd_old)
    # no keyword, no decoder: the former defaults
    default = MODELS.build(SMALL)
    assert (default.left_as_right, default.crop_extent,
            default.depth_range) == (True, 0.25, 0.4)
    pose, betas, roots, joints = _truth(2)
    sample = _sample(new, pose, betas, joints)
    feats = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        a = old.predict(feats, [sample])[0]
        b = new.predict(feats, [sample])[0]
        la, lb = old.loss(feats, [sample]), new.loss(feats, [sample])
    for key in a.keys():
        assert torch.equal(a.get(key), b.get(key)), key
    assert la.keys() == lb.keys()
    assert all(torch.equal(la[k], lb[k]) for k in la)


def test_a_keyword_that_contradicts_the_decoder_is_an_error():
    with pytest.raises(ValueError, match=r'left_as_right=False contradicts'):
        MODELS.build(dict(SMALL, decoder=CODEC, left_as_right=False))
    with pytest.raises(ValueError, match=r'crop_extent=0.2 contradicts'):
        MODELS.build(dict(SMALL, decoder=CODEC, crop_extent=0.2))
    with pytest.warns(DeprecationWarning, match='repeats its decoder'):
        MODELS.build(dict(SMALL, decoder=CODEC, depth_range=0.4))


def test_depth_range_of_the_targets_is_checked(head):
    pose, betas, roots, joints = _truth()
    sample = _sample(head, pose, betas, joints)
    sample.set_metainfo(
        dict(
            target_conventions=dict(
                left_as_right=True, depth_range=0.3, root_index=0,
                camera_model='perspective')))
    with pytest.raises(ValueError, match='depth_range=0.3'):
        head.loss(torch.zeros(1, 32, 4, 4), [sample])


def test_state_dict_keys_are_those_of_the_shipped_checkpoint():
    """The demo's reconstructor head, built from its config (decoder=codec
    now), has exactly the head weights of the shipped checkpoint and loads
    them strictly."""
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(__file__))))
    cfg = Config.fromfile(
        osp.join(root, 'configs/diffusion/'
                 'a2p_res18w32+refiner_1xb16-cpu_synthetic-128x128.py'))
    assert cfg.model.head.decoder.type == 'TwoHandCodec'
    head = MODELS.build(cfg.model.head)
    ckpt = torch.load(
        osp.join(root, 'demo/resources/checkpoints/'
                 'hand2p_default_synthetic.pth'),
        map_location='cpu',
        weights_only=True)['state_dict']
    prefix = 'reconstructor.head.'
    weights = {
        k[len(prefix):]: v
        for k, v in ckpt.items() if k.startswith(prefix)
    }
    assert sorted(head.state_dict()) == sorted(weights)
    head.load_state_dict(weights, strict=True)
