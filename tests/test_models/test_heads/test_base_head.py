# Copyright (c) mmhand2p contributors. All rights reserved.
"""BaseTwoHandHead: the shared path of MANO-regressing heads (decode, pack,
metainfo, target checks), exercised through a minimal head."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.codecs import TwoHandCodec
from mmhand2p.models.body_models import MANOLayer
from mmhand2p.models.heads import BaseTwoHandHead
from mmhand2p.structures import HAND_FIELDS, HandDataSample
from mmhand2p.utils.geometry import project_points

K = torch.tensor([[300.0, 0, 60.0], [0, 310.0, 66.0], [0, 0, 1]])
W = H = 128


class ParamHead(BaseTwoHandHead):
    """A head whose 'network' is a set of parameters: what a new head
    writes on top of the base (not registered: the registry's heads are
    the package's)."""

    def __init__(self, pose, betas, root, **kwargs):
        super().__init__(**kwargs)
        self.pose = torch.nn.Parameter(pose.clone())
        self.betas = torch.nn.Parameter(betas.clone())
        self.root = torch.nn.Parameter(root.clone())

    def forward(self, feats):
        return dict(pose=self.pose, betas=self.betas, root=self.root)

    def loss(self, feats, data_samples, train_cfg=None):
        self.check_targets(data_samples)
        p = self.forward(feats)
        dec = self.decode_hands(p['pose'], p['betas'], p['root'])
        j3d = self.gt(data_samples, 'joints_3d', dec['joints'].device)
        return dict(loss_joints=(dec['joints'] - j3d).abs().mean())

    def predict(self, feats, data_samples, test_cfg=None):
        p = self.forward(feats)
        k, _ = self.input_meta(data_samples, p['pose'].device)
        return self.pack_instances(
            self.decode_hands(p['pose'], p['betas'], p['root']), k)


def _truth(seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(1, 2, 16, 3, generator=g)
    betas = torch.randn(1, 2, 10, generator=g)
    roots = torch.tensor([[[0.02, -0.01, 0.6], [0.12, 0.0, 0.62]]])
    return pose, betas, roots


def _sample(joints=None, **meta):
    ds = HandDataSample(
        metainfo=dict(cam_intrinsics=K.numpy(), input_size=(W, H), **meta))
    if joints is not None:
        ds.gt_hands = InstanceData(joints_3d=joints)
    return ds


def test_base_head_is_abstract():
    with pytest.raises(TypeError, match='abstract'):
        BaseTwoHandHead()


@pytest.mark.parametrize('left_as_right', [True, False])
@pytest.mark.parametrize('root_index', [0, 9])
def test_decode_hands_places_each_true_hand(left_as_right, root_index):
    pose, betas, roots = _truth()
    codec = TwoHandCodec(left_as_right=left_as_right, root_index=root_index)
    head = ParamHead(
        codec.to_network_pose(pose), betas, roots, decoder=codec)
    assert head.left_as_right is left_as_right
    assert head.root_index == root_index
    with torch.no_grad():
        dec = head.decode_hands(*head.forward(None).values())
    local = MANOLayer()(pose=pose, betas=betas)
    r = root_index
    want = local.joints - local.joints[:, :, r:r + 1] + roots[:, :, None]
    torch.testing.assert_close(dec['joints'], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(dec['joints'][:, :, r], roots, atol=1e-6,
                               rtol=0)
    # each hand in its own model's space (left un-mirrored)
    torch.testing.assert_close(dec['pose'], pose, atol=1e-6, rtol=0)
    # transl reproduces the mesh through MANOLayer
    again = MANOLayer()(pose=dec['pose'], betas=betas, transl=dec['transl'])
    torch.testing.assert_close(again.vertices, dec['vertices'], atol=1e-6,
                               rtol=0)


def test_mirrored_network_pose_matters():
    """Without un-mirroring the left hand would be a different hand: the
    codec's convention is what the base applies."""
    pose, betas, roots = _truth(1)
    net = TwoHandCodec(left_as_right=True).to_network_pose(pose)
    a = ParamHead(net, betas, roots, decoder=dict(
        type='TwoHandCodec', left_as_right=True))
    b = ParamHead(net, betas, roots, decoder=dict(
        type='TwoHandCodec', left_as_right=False))
    with torch.no_grad():
        ja = a.decode_hands(*a.forward(None).values())['joints']
        jb = b.decode_hands(*b.forward(None).values())['joints']
    torch.testing.assert_close(ja[:, 0], jb[:, 0], atol=0, rtol=0)
    assert (ja[:, 1] - jb[:, 1]).abs().max() > 1e-3


def test_pack_instances_fields_and_values():
    pose, betas, roots = _truth(2)
    head = ParamHead(pose, betas, roots)
    out = head.predict(None, [_sample()])
    assert len(out) == 1
    inst = out[0]
    assert set(inst.keys()) == {
        'joints_3d', 'vertices', 'mano_pose', 'mano_betas', 'mano_transl',
        'joints_2d', 'scores'
    }
    assert set(inst.keys()) <= set(HAND_FIELDS)
    assert len(inst) == 2
    assert inst.vertices.shape == (2, 778, 3)
    assert not any(v.requires_grad for v in inst.values())
    torch.testing.assert_close(
        inst.joints_2d, project_points(inst.joints_3d, K), atol=1e-3,
        rtol=0)
    assert torch.equal(inst.scores, torch.ones(2))
    torch.testing.assert_close(inst.mano_betas, betas[0], atol=0, rtol=0)
    with torch.no_grad():
        dec = head.decode_hands(*head.forward(None).values())
    scored = head.pack_instances(dec, K[None], torch.tensor([[0.9, 0.4]]))
    assert torch.equal(scored[0].scores, torch.tensor([0.9, 0.4]))


def test_loss_trains_through_the_shared_path():
    pose, betas, roots = _truth(3)
    local = MANOLayer()(pose=pose, betas=betas)
    joints = local.joints - local.joints[:, :, :1] + roots[:, :, None]
    head = ParamHead(pose, betas, roots)
    assert head.loss(None, [_sample(joints[0])])['loss_joints'] < 1e-6
    moved = ParamHead(pose, betas, roots + 0.01)
    loss = moved.loss(None, [_sample(joints[0])])['loss_joints']
    assert loss.item() == pytest.approx(0.01, rel=1e-3)
    loss.backward()
    assert moved.root.grad.abs().sum() > 0


def test_input_meta_and_gt():
    pose, betas, roots = _truth()
    head = ParamHead(pose, betas, roots)
    k2 = K.clone()
    k2[0, 0] = 280.0
    samples = [_sample(torch.zeros(2, 21, 3)), _sample(torch.ones(2, 21, 3))]
    samples[1].set_metainfo(dict(cam_intrinsics=k2.double().numpy()))
    k, size = head.input_meta(samples, 'cpu')
    assert size == (W, H) and k.dtype == torch.float32
    assert torch.equal(k, torch.stack([K, k2]))
    g = head.gt(samples, 'joints_3d')
    assert g.shape == (2, 2, 21, 3) and g.dtype == torch.float32
    assert g[0].eq(0).all() and g[1].eq(1).all()
    assert head.gt(samples, 'vertices') is None
    assert head.gt([samples[0], _sample()], 'joints_3d') is None
    bare = HandDataSample(metainfo=dict(cam_intrinsics=K.numpy()))
    with pytest.raises(KeyError, match=r'ParamHead needs .*input_size'):
        head.input_meta([bare], 'cpu')


def test_check_targets_against_the_codec():
    pose, betas, roots = _truth()
    codec = TwoHandCodec(left_as_right=True, depth_range=0.4)
    head = ParamHead(pose, betas, roots, decoder=codec)
    ok = _sample(flip_left=True, target_conventions=codec.conventions())
    head.check_targets([ok])
    head.check_targets([_sample()])  # nothing recorded: nothing to check
    with pytest.raises(ValueError, match='left_as_right'):
        head.check_targets([_sample(flip_left=False)])
    other = TwoHandCodec(left_as_right=True, depth_range=0.3)
    with pytest.raises(
            ValueError, match=r'depth_range=0\.3 but the head decodes with '
            r'depth_range=0\.4'):
        head.check_targets([
            _sample(flip_left=True, target_conventions=other.conventions())
        ])
