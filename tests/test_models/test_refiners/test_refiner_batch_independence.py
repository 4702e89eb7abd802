# Copyright (c) mmhand2p contributors. All rights reserved.
"""The refiner's output is a function of the sample, not of the batch: the
sampling noise of each sample comes from its own generator, seeded with the
refiner's ``seed`` and the sample's identity (issue 12, item 2).

The refiner here is the trained one of the shipped demo checkpoint (with an
untrained denoiser, whose residual heads start at zero, the noise would not
change the result at all)."""
import hashlib
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmhand2p.models.refiners import TwoHandGate
from mmhand2p.models.refiners.two_hand_diffusion import (
    condition_noise_keys, content_noise_key, noise_key_from_metainfo,
    sample_seed)
from mmhand2p.registry import MODELS
from mmhand2p.structures import HandDataSample
from mmhand2p.utils.geometry import project_points

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
DEMO_CKPT = osp.join(REPO, 'demo', 'resources', 'checkpoints',
                     'hand2p_default_synthetic.pth')
REFINER_CONFIG = osp.join(
    REPO, 'configs', 'diffusion',
    'a2p_res18w32+refiner_1xb16-cpu_synthetic-128x128.py')
K = np.array([[300.0, 0, 63.5], [0, 300.0, 63.5], [0, 0, 1]], np.float32)
TOL = 1e-6  # metres


def _demo_refiner(**sampler):
    """The demo checkpoint's trained refiner (10 guided DDIM steps unless
    ``sampler`` says otherwise)."""
    cfg = Config.fromfile(REFINER_CONFIG).model.refiner.to_dict()
    cfg['sampler'] = {**cfg['sampler'], 'num_steps': 10, **sampler}
    refiner = MODELS.build(cfg)
    state = torch.load(DEMO_CKPT, map_location='cpu', weights_only=True)
    prefix = 'reconstructor.refiner.'
    refiner.load_state_dict(
        {
            k[len(prefix):]: v.float() if v.is_floating_point() else v
            for k, v in state['state_dict'].items() if k.startswith(prefix)
        },
        strict=True)
    return refiner.eval()


@pytest.fixture(scope='module')
def refiner():
    return _demo_refiner()


@pytest.fixture(scope='module')
def scenes(refiner):
    """Three penetrating two-hand predictions (different random poses),
    0.5 m in front of the crop camera ``K``: the left hand's centroid 2.5 cm
    above the right one's."""
    mano = refiner.body_model
    g = torch.Generator().manual_seed(3)
    pose = torch.randn(3, 2, 16, 3, generator=g) * 0.15
    betas = torch.randn(3, 2, 10, generator=g) * 0.5
    with torch.no_grad():
        out = mano(pose=pose, betas=betas)
        transl = torch.zeros(3, 2, 3)
        transl[:, 0] = torch.tensor([0.0, 0.0, 0.5])
        transl[:, 1] = (
            out.vertices[:, 0].mean(1) - out.vertices[:, 1].mean(1) +
            transl[:, 0] + torch.tensor([0.0, 0.025, 0.0]))
        out = mano(pose=pose, betas=betas, transl=transl)
    k = torch.as_tensor(K)
    return [
        dict(
            mano_pose=pose[i],
            mano_betas=betas[i],
            mano_transl=transl[i],
            vertices=out.vertices[i],
            joints_3d=out.joints[i],
            joints_2d=project_points(out.joints[i], k)) for i in range(3)
    ]


def _refine(refiner, scenes, order, metainfo):
    """Refine ``scenes[i] for i in order`` as one batch; the results in
    ``order``."""
    preds = [
        InstanceData(**{
            k: v.clone()
            for k, v in scenes[i].items()
        }) for i in order
    ]
    samples = [
        HandDataSample(metainfo=dict(cam_intrinsics=K, **metainfo(i)))
        for i in order
    ]
    out = refiner.refine(preds, samples)
    assert all(p.refined for p in out)  # the gate lets all three through
    return out


IDENTITIES = {
    'img_path':
    lambda i: dict(img_path=f'/data/capture0/cam{i}/0001.jpg'),
    'img_path+frame_idx':
    lambda i: dict(img_path='/data/video.mp4', frame_idx=7 + i),
    'noise_key':
    lambda i: dict(noise_key=f'image-{i}#pair0'),
    'condition':
    lambda i: {},
}


@pytest.mark.parametrize('identity', list(IDENTITIES))
def test_refined_hands_do_not_depend_on_the_batch(refiner, scenes, identity):
    """Alone, in a batch of 3 with other samples and in reversed order:
    the same vertices and joints within 1e-6 m, for every way a sample is
    named (metainfo, an explicit key, or the condition's content).

    Before per-sample noise (one generator drawing ``(B, D)`` for the
    batch) the hands differed by millimetres."""
    metainfo = IDENTITIES[identity]
    alone = [_refine(refiner, scenes, [i], metainfo)[0] for i in range(3)]
    batch = _refine(refiner, scenes, [0, 1, 2], metainfo)
    reverse = _refine(refiner, scenes, [2, 1, 0], metainfo)[::-1]
    for i in range(3):
        for other in (batch[i], reverse[i]):
            for name in ('vertices', 'joints_3d'):
                diff = (alone[i].get(name) - other.get(name)).abs().max()
                assert diff <= TOL, (identity, i, name, float(diff))
        # and refinement did move the hands (the test would be empty if not)
        move = (alone[i].vertices - scenes[i]['vertices']).norm(dim=-1).max()
        assert move > 1e-3


def test_stochastic_steps_and_noise_start_are_per_sample(scenes):
    """``eta > 0`` draws noise at every step and ``init='noise'`` starts
    from pure noise: both come from the sample's own generator too."""
    metainfo = IDENTITIES['img_path']
    for sampler in (dict(eta=1.0), dict(init='noise')):
        ref = _demo_refiner(**sampler)
        alone = [_refine(ref, scenes, [i], metainfo)[0] for i in range(3)]
        reverse = _refine(ref, scenes, [2, 1, 0], metainfo)[::-1]
        for i in range(3):
            diff = (alone[i].vertices - reverse[i].vertices).abs().max()
            assert diff <= TOL, (sampler, i, float(diff))


def test_the_identity_chooses_the_noise(refiner, scenes):
    """Another name or another seed gives other noise (so other hands);
    the same name and seed the same hands, bit for bit."""

    def verts(path, seed=0):
        refiner.seed = seed
        try:
            return _refine(refiner, scenes, [0],
                           lambda i: dict(img_path=path))[0].vertices
        finally:
            refiner.seed = 0

    a = verts('a.jpg')
    assert torch.equal(a, verts('a.jpg'))
    assert (a - verts('b.jpg')).abs().max() > 1e-4
    assert (a - verts('a.jpg', seed=1)).abs().max() > 1e-4


def test_per_sample_seeds_and_keys():
    """The seed is the first 8 bytes (little-endian) of
    ``sha256(f'{seed}\\0{key}')``: stable across processes and machines
    (Python's ``hash`` of a string is salted per process)."""
    digest = hashlib.sha256(b'0\x00img_path=a.jpg').digest()
    assert sample_seed(0, 'img_path=a.jpg') == int.from_bytes(
        digest[:8], 'little')
    assert 0 <= sample_seed(12345, 'x') < 2**64
    assert sample_seed(0, 'x') != sample_seed(1, 'x')
    # identity from metainfo: path, annotation id and frame; never the
    # position in the dataset (sample_idx)
    assert noise_key_from_metainfo(
        dict(img_path='a.jpg', img_id=np.int64(5), sample_idx=3,
             frame_idx=2)) == 'img_path=a.jpg|img_id=5|frame_idx=2'
    assert noise_key_from_metainfo(dict(sample_idx=3)) is None
    assert noise_key_from_metainfo(dict(noise_key='k', img_path='a')) == 'k'
    # content keys: equal content, equal key, whatever the memory layout
    img = torch.randint(0, 256, (48, 64, 3), dtype=torch.uint8)
    view = img.permute(2, 0, 1)  # what the inferencer hands the model
    assert content_noise_key(view) == content_noise_key(view.contiguous())
    other = view.clone()
    other[0, 0, 0] ^= 1
    assert content_noise_key(view) != content_noise_key(other)
    # a large image is hashed on a strided subset of at most max_elements
    # values, the shape included
    big = torch.zeros(3, 400, 300, dtype=torch.uint8)
    key = content_noise_key(big, max_elements=10000)
    assert key == content_noise_key(big.clone(), max_elements=10000)
    # stride ceil(sqrt(360000 / 10000)) = 6
    big[0, 1, 1] = 1  # not on the grid
    assert key == content_noise_key(big, max_elements=10000)
    big[0, 6, 12] = 1
    assert key != content_noise_key(big, max_elements=10000)
    # condition keys: the normalised condition on a 1e-3 grid
    cond = torch.tensor([[0.1234, -2.0], [0.1234, -2.0]])
    keys = condition_noise_keys(cond)
    assert keys[0] == keys[1]
    assert keys == condition_noise_keys(cond + 1e-5)
    assert keys[0] != condition_noise_keys(cond + 2e-3)[0]


def test_global_generator_without_a_seed(refiner, scenes):
    """``seed=None``: the global generator (``torch.manual_seed``
    reproduces a run, but not across batch compositions)."""
    refiner.seed = None
    try:
        torch.manual_seed(5)
        a = _refine(refiner, scenes, [0], lambda i: {})[0].vertices
        torch.manual_seed(5)
        b = _refine(refiner, scenes, [0], lambda i: {})[0].vertices
        c = _refine(refiner, scenes, [0], lambda i: {})[0].vertices
    finally:
        refiner.seed = 0
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4


def test_volume_gate_failure_stays_with_its_sample(refiner, scenes,
                                                   monkeypatch):
    """A PenVol failure (degenerate mesh) opens the gate for the failing
    sample only: the other samples' decisions do not depend on it."""
    gate = TwoHandGate(check='volume')
    verts = torch.stack([s['vertices'] for s in scenes])
    verts[1, 1] += torch.tensor([0.0, 0.3, 0.0])  # left hand away
    bad = verts[2].clone()
    bad[0] = float('nan')
    verts[2] = bad
    real = gate._penvol

    def penvol(v, faces):
        if torch.isnan(v).any():
            raise ValueError('degenerate mesh')
        return real(v, faces)

    monkeypatch.setattr(gate, '_penvol', penvol)
    mask, info = gate(verts, refiner.body_model.faces, None)
    assert mask.tolist() == [True, False, True]
    assert info['volume'][0] > 1e-3 and info['volume'][1] == 0
    assert info['volume'][2] == float('inf')
    alone, _ = gate(verts[1:2], refiner.body_model.faces, None)
    assert alone.tolist() == [False]
