# Copyright (c) mmhand2p contributors. All rights reserved.
"""A2P stage 2: cosine schedule, DDIM with and without guidance, the
two-hand parameterisation, gating and refinement, training with the
Runner, checkpoints and the pair-making tool."""
import importlib.util
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.datasets import PenetrationPairsDataset
from mmhand2p.models.refiners import (CosineNoiseSchedule, GuidedDDIMSampler,
                                      TwoHandGate, box_iou, ddim_step,
                                      decode_two_hands, encode_two_hands,
                                      load_pairs, save_pairs)
from mmhand2p.registry import MODELS
from mmhand2p.structures import HandDataSample
from mmhand2p.utils.geometry import (mirror_points, project_points,
                                     rot6d_to_axis_angle)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
K = np.array([[300.0, 0, 63.5], [0, 300.0, 63.5], [0, 0, 1]], np.float32)
SMALL_DENOISER = dict(
    type='TwoHandDenoiser',
    embed_dims=32,
    num_layers=1,
    num_heads=2,
    ffn_dims=64,
    dropout=0.0)


def _tool():
    path = osp.join(REPO, 'tools', 'misc', 'make_penetration_pairs.py')
    spec = importlib.util.spec_from_file_location('make_pairs_tool', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def mano():
    from mmhand2p.models.body_models import MANOLayer
    return MANOLayer()


def _scene(mano, bsz, gap, seed=0):
    """``bsz`` two-hand scenes (random poses) with the left hand's centroid
    ``gap`` metres above the right one's along y (the palm normal of the
    rest pose), 0.5 m in front of the camera: pose, betas, transl, root,
    vertices, joints."""
    g = torch.Generator().manual_seed(seed)
    pose = torch.randn(bsz, 2, 16, 3, generator=g) * 0.15
    betas = torch.randn(bsz, 2, 10, generator=g) * 0.5
    with torch.no_grad():
        out = mano(pose=pose, betas=betas)
        transl = torch.zeros(bsz, 2, 3)
        transl[:, 0] = torch.tensor([0.0, 0.0, 0.5])
        transl[:, 1] = (
            out.vertices[:, 0].mean(1) - out.vertices[:, 1].mean(1) +
            transl[:, 0] + torch.tensor([0.0, gap, 0.0]))
        out = mano(pose=pose, betas=betas, transl=transl)
    return dict(
        pose=pose,
        betas=betas,
        transl=transl,
        root=out.joints[:, :, 0],
        vertices=out.vertices,
        joints=out.joints)


def _pairs_file(path, mano, n=32, seed=0):
    """A pair file: clean hands 4 cm apart, penetrating ones 2.5 cm."""
    x0 = _scene(mano, n, 0.04, seed)
    c = _scene(mano, n, 0.025, seed)
    arrays = dict(
        x0_pose=x0['pose'].numpy(),
        x0_betas=x0['betas'].numpy(),
        x0_root=x0['root'].numpy(),
        c_pose=c['pose'].numpy(),
        c_betas=c['betas'].numpy(),
        c_root=c['root'].numpy(),
        kind=np.zeros(n, np.uint8),
        level=np.ones(n, np.int16),
        c_volume=np.ones(n, np.float32),
        x0_volume=np.zeros(n, np.float32),
        source_index=np.arange(n))
    save_pairs(str(path), arrays, dict(kind='test'))
    return str(path)


@pytest.fixture(scope='module')
def pairs_path(tmp_path_factory, mano):
    return _pairs_file(tmp_path_factory.mktemp('pairs') / 'p.npz', mano)


def _refiner(pairs_path, **kwargs):
    cfg = dict(
        type='TwoHandDiffusionRefiner',
        stats_file=pairs_path,
        denoiser=SMALL_DENOISER,
        sampler=dict(num_steps=4, guidance_weight=20.0))
    cfg.update(kwargs)
    return MODELS.build(cfg)


# ---------------------------------------------------------------------------
# schedule and sampler
# ---------------------------------------------------------------------------
def test_cosine_schedule_matches_nichol_dhariwal():
    sched = CosineNoiseSchedule(num_timesteps=1000)
    s = 0.008

    def alpha_bar(u):  # Improved DDPM, Eq. 17
        f = math.cos((u + s) / (1 + s) * math.pi / 2)**2
        return f / math.cos(s / (1 + s) * math.pi / 2)**2

    for t in (0, 1, 250, 500, 900, 990):
        assert sched.alpha_bar(torch.tensor(t)).item() == pytest.approx(
            alpha_bar((t + 1) / 1000), rel=1e-9)
    ab = sched.alphas_cumprod
    assert (ab[1:] < ab[:-1]).all() and sched.betas.max() <= 0.999
    assert sched.alpha_bar(torch.tensor(-1)).item() == 1.0
    assert ab[-1] < 1e-4
    x0, noise = torch.randn(3, 5), torch.randn(3, 5)
    t = torch.tensor([0, 500, 999])
    a = torch.tensor([alpha_bar((i + 1) / 1000) for i in (0, 500)] +
                     [sched.alphas_cumprod[999].item()])[:, None].float()
    torch.testing.assert_close(
        sched.q_sample(x0, t, noise),
        a.sqrt() * x0 + (1 - a).sqrt() * noise)
    ts = sched.ddim_timesteps(5, start_t=400)
    assert ts.tolist() == [400, 300, 200, 100, 0]


def _toy_denoiser(x_t, t, cond):
    """A deterministic stand-in for the network: any function of its
    inputs will do for checking the sampler's arithmetic."""
    return 0.5 * torch.tanh(x_t) + 0.3 * cond + 1e-4 * t[:, None].float()


def test_ddim_without_guidance_is_closed_form_ddim():
    """The sampler with guidance off reproduces DDIM exactly: each step
    ``x_p = sqrt(a_p) x0 + sqrt(1 - a_p) (x_t - sqrt(a_t) x0) /
    sqrt(1 - a_t)`` computed here in float64 numpy."""
    sched = CosineNoiseSchedule(num_timesteps=1000)
    cond = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    x_init = torch.randn(4, 7, generator=torch.Generator().manual_seed(2))
    abar = sched.alphas_cumprod.numpy()
    steps = [999, 749, 500, 250, 0]

    x = x_init.double().numpy()
    for k, t in enumerate(steps):
        x0 = _toy_denoiser(
            torch.from_numpy(x).float(), torch.full((4, ), t),
            cond).double().numpy()
        a_t = abar[t]
        a_p = abar[steps[k + 1]] if k + 1 < len(steps) else 1.0
        eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        x = math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * eps
    expected = torch.from_numpy(x).float()

    guide_fn = lambda x0: (x0**2).sum(-1)  # noqa: E731
    outs = []
    for weight, fn in ((0.0, guide_fn), (5.0, None), (0.0, None)):
        sampler = GuidedDDIMSampler(num_steps=5, guidance_weight=weight)
        outs.append(
            sampler.sample(_toy_denoiser, cond, sched, fn, x_init=x_init))
        # float32 sampler against the float64 recursion
        torch.testing.assert_close(outs[-1], expected, rtol=1e-5, atol=1e-5)
    # every way of turning guidance off is the same computation, bit for bit
    assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[2])
    # and one step by itself
    x0 = _toy_denoiser(x_init, torch.full((4, ), 999), cond)
    a_t, a_p = sched.alpha_bar(torch.tensor(999)), sched.alpha_bar(
        torch.tensor(749))
    eps = (x_init - a_t.sqrt().float() * x0) / (1 - a_t).sqrt().float()
    torch.testing.assert_close(
        ddim_step(x_init, x0, a_t, a_p),
        a_p.sqrt().float() * x0 + (1 - a_p).sqrt().float() * eps)


def test_guidance_is_a_gradient_step_on_x0():
    """One sampling step to t = -1 returns the guided x0 estimate:
    ``x0 - lambda grad L`` with ``L = 0.5 |x0 - target|^2``, i.e.
    ``x0 - lambda (x0 - target)`` (twice with two iterations)."""
    sched = CosineNoiseSchedule(num_timesteps=1000)
    cond = torch.randn(3, 5)
    x_init = torch.randn(3, 5)
    target = torch.randn(3, 5)

    def loss(x0):
        return 0.5 * ((x0 - target)**2).sum(-1)

    x0 = _toy_denoiser(x_init, torch.full((3, ), 300), cond)
    for iters in (1, 2):
        sampler = GuidedDDIMSampler(
            num_steps=1,
            start_t=300,
            guidance_weight=0.25,
            guidance_iters=iters)
        out = sampler.sample(_toy_denoiser, cond, sched, loss, x_init=x_init)
        expected = x0.clone()
        for _ in range(iters):
            expected = expected - 0.25 * (expected - target)
        torch.testing.assert_close(out, expected)
    # guidance only on the last step
    sampler = GuidedDDIMSampler(
        num_steps=3, start_t=300, guidance_weight=0.25, guidance_last_steps=1)
    traj, plain = [], []
    sampler.sample(
        _toy_denoiser, cond, sched, loss, x_init=x_init, trajectory=traj)
    GuidedDDIMSampler(
        num_steps=3, start_t=300).sample(
            _toy_denoiser, cond, sched, None, x_init=x_init, trajectory=plain)
    torch.testing.assert_close(traj[0], plain[0])
    torch.testing.assert_close(traj[1], plain[1])
    assert not torch.allclose(traj[2], plain[2])


def test_stochastic_and_noise_start_are_seeded():
    sched = CosineNoiseSchedule(num_timesteps=100)
    cond = torch.randn(2, 5)

    def run(seed, **kwargs):
        gen = torch.Generator().manual_seed(seed)
        return GuidedDDIMSampler(
            num_steps=5, **kwargs).sample(
                _toy_denoiser, cond, sched, generator=gen)

    for kwargs in (dict(eta=1.0), dict(init='noise')):
        torch.testing.assert_close(run(0, **kwargs), run(0, **kwargs))
        assert not torch.allclose(run(0, **kwargs), run(1, **kwargs))
    with pytest.raises(ValueError, match='init'):
        GuidedDDIMSampler(init='zeros')


# ---------------------------------------------------------------------------
# parameterisation
# ---------------------------------------------------------------------------
def test_encode_decode_and_hands_reproduce_mano(mano, pairs_path):
    sc = _scene(mano, 3, 0.03)
    x = encode_two_hands(sc['pose'], sc['betas'], sc['root'])
    assert x.shape == (3, 215)
    p = decode_two_hands(x)
    torch.testing.assert_close(
        rot6d_to_axis_angle(p.pose_6d), sc['pose'], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p.betas, sc['betas'])
    torch.testing.assert_close(p.rel, sc['root'][:, 1] - sc['root'][:, 0])
    ref = _refiner(pairs_path)
    for anchor in ('mean', 'right'):
        ref.anchor = anchor
        hands = ref.hands_from_params(x, sc['root'])
        torch.testing.assert_close(
            hands['vertices'], sc['vertices'], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            hands['transl'], sc['transl'], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='215'):
        decode_two_hands(x[:, :200])


def test_guidance_gradient_is_finite_at_flat_hands(mano, pairs_path):
    """The guidance differentiates through 6D -> axis-angle -> MANO; flat
    fingers (identity rotations) and rotations about one axis must not give
    NaN gradients."""
    ref = _refiner(pairs_path)
    sc = _scene(mano, 2, 0.025)
    pose = sc['pose'].clone()
    pose[:, :, 1:] = 0.0  # flat fingers: identity rotations
    pose[0, 0, 0] = torch.tensor([0.0, 0.0, 1.0])
    x = ref.normalize(ref.encode(pose, sc['betas'], sc['root']))
    x.requires_grad_(True)
    loss = ref.guidance_fn(x)
    assert loss.sum() > 0
    grad, = torch.autograd.grad(loss.sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


# ---------------------------------------------------------------------------
# training, statistics, checkpoints
# ---------------------------------------------------------------------------
def test_stats_training_step_and_checkpoint(pairs_path, tmp_path):
    data = load_pairs(pairs_path)
    x = encode_two_hands(*(torch.as_tensor(data[k]).double()
                           for k in ('x0_pose', 'x0_betas', 'x0_root')))
    ref = _refiner(pairs_path)
    torch.testing.assert_close(ref.x_mean, x.mean(0).float())
    torch.testing.assert_close(ref.x_std, x.std(0).clamp(min=0.01).float())
    ds = PenetrationPairsDataset(pairs_path, mirror_prob=0.5)
    batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    losses = ref(**batch, mode='loss')
    assert set(losses) == {'loss_diffusion'}
    losses['loss_diffusion'].backward()
    opt.step()
    assert torch.isfinite(losses['loss_diffusion'])
    # the checkpoint carries the statistics; a reconstructor's works too
    path = str(tmp_path / 'refiner.pth')
    torch.save(dict(state_dict=ref.state_dict(), meta={}), path)
    assert 'x_mean' in ref.state_dict() and not any('body_model' in k
                                                    for k in ref.state_dict())
    loaded = _refiner(None, checkpoint=path, frozen=True)
    torch.testing.assert_close(loaded.x_std, ref.x_std)
    for a, b in zip(loaded.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)
    assert not any(p.requires_grad for p in loaded.parameters())
    wrapped = str(tmp_path / 'reconstructor.pth')
    torch.save(
        dict(
            state_dict={
                **{
                    f'refiner.{k}': v
                    for k, v in ref.state_dict().items()
                }, 'backbone.w': torch.zeros(1)
            }), wrapped)
    torch.testing.assert_close(
        _refiner(None, checkpoint=wrapped).x_mean, ref.x_mean)
    with pytest.raises(RuntimeError, match='normalisation statistics'):
        _refiner(None).sample(torch.zeros(1, 215))
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        _refiner(None, checkpoint=str(tmp_path / 'nothing.pth'))


def test_runner_trains_the_refiner(pairs_path, tmp_path):
    """The synthetic-set config trains with mmengine's Runner (a few
    iterations on a tiny pair file)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'diffusion',
                 'a2p-refiner_tf3-d128_1xb32-10k_synthetic-pairs.py'))
    cfg.work_dir = str(tmp_path)
    cfg.model.stats_file = [pairs_path]
    cfg.model.denoiser = SMALL_DENOISER
    cfg.train_dataloader.dataset.ann_file = [pairs_path]
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg.max_iters = 3
    cfg.default_hooks.checkpoint.interval = 3
    cfg.param_scheduler = []
    cfg.visualizer = dict(type='Visualizer', vis_backends=[])
    cfg.experiment_name = 'refiner_runner_test'
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = torch.load(
        osp.join(str(tmp_path), 'iter_3.pth'),
        map_location='cpu',
        weights_only=False)
    assert bool(ckpt['state_dict']['stats_ready'])
    torch.testing.assert_close(ckpt['state_dict']['x_mean'],
                               runner.model.x_mean)


# ---------------------------------------------------------------------------
# refinement of predictions: gating and outputs
# ---------------------------------------------------------------------------
def _predictions(mano, scenes):
    preds, samples = [], []
    k = torch.as_tensor(K)
    for sc in scenes:
        for i in range(len(sc['pose'])):
            uv = project_points(sc['joints'][i], k)
            preds.append(
                InstanceData(
                    mano_pose=sc['pose'][i].clone(),
                    mano_betas=sc['betas'][i].clone(),
                    mano_transl=sc['transl'][i].clone(),
                    vertices=sc['vertices'][i].clone(),
                    joints_3d=sc['joints'][i].clone(),
                    joints_2d=uv,
                    scores=torch.ones(2)))
            samples.append(HandDataSample(metainfo=dict(cam_intrinsics=K)))
    return preds, samples


@pytest.mark.parametrize('batch_invariant', [False, True])
def test_gating_skips_non_overlapping_and_non_penetrating(
        mano, pairs_path, monkeypatch, batch_invariant):
    far = _scene(mano, 1, 0.0, seed=1)  # side by side: boxes apart
    shift = torch.tensor([0.25, 0.0, 0.0])
    for key in ('transl', 'root'):
        far[key] = far[key].clone()
        far[key][:, 1] += shift
    far['vertices'] = far['vertices'].clone()
    far['vertices'][:, 1] += shift
    far['joints'] = far['joints'].clone()
    far['joints'][:, 1] += shift
    apart = _scene(mano, 1, 0.06, seed=2)  # boxes overlap, no contact
    pen = _scene(mano, 2, 0.025, seed=3)  # overlapping and penetrating
    preds, samples = _predictions(mano, [far, apart, pen])
    before = [p.clone() for p in preds]
    ref = _refiner(pairs_path, batch_invariant=batch_invariant)
    sizes = []
    real_sample = ref.sample

    def counting(cond, *args, **kwargs):
        sizes.append(len(cond))
        return real_sample(cond, *args, **kwargs)

    monkeypatch.setattr(ref, 'sample', counting)
    k = torch.as_tensor(K)
    boxes = [
        torch.cat([
            project_points(p.vertices, k).amin(1),
            project_points(p.vertices, k).amax(1)
        ], -1) for p in preds
    ]
    ious = [box_iou(b[0], b[1]).item() for b in boxes]
    assert ious[0] == 0 and ious[1] > 0 and ious[2] > 0
    out = ref.refine(preds, samples)
    assert out is preds
    assert [p.refined for p in out] == [False, False, True, True]
    # one batched call on the gated subset, or one call per gated sample
    assert sizes == ([1, 1] if batch_invariant else [2])
    for p, b in zip(out[:2], before[:2]):
        for name in ('mano_pose', 'mano_betas', 'mano_transl', 'vertices',
                     'joints_3d', 'joints_2d'):
            assert torch.equal(p.get(name), b.get(name))
    for p, b in zip(out[2:], before[2:]):
        assert not torch.equal(p.vertices, b.vertices)
        assert torch.equal(p.unrefined_vertices, b.vertices)
    # the exact check (PenVol) decides the same; without boxes only the
    # penetration check counts
    verts = torch.stack([b.vertices for b in before])
    gate = TwoHandGate(check='volume')
    mask, info = gate(verts, mano.faces, torch.stack(boxes))
    assert mask.tolist() == [False, False, True, True]
    assert info['volume'][0] == 0 and (info['volume'][2:] > 1e-3).all()
    mask, _ = TwoHandGate()(verts, mano.faces, None)
    assert mask.tolist() == [False, False, True, True]


def test_refined_outputs_are_consistent_and_less_penetrating(mano, pairs_path):
    """Refined fields agree with each other (MANO of the new parameters,
    projection of the new joints), the wrists' midpoint stays, and the
    guidance reduces the collision loss."""
    pen = _scene(mano, 2, 0.025, seed=3)
    preds, samples = _predictions(mano, [pen])
    # an untrained model returns its input: the result is one gradient step
    # from the input hands
    ref = _refiner(pairs_path, sampler=dict(num_steps=3, guidance_weight=10.0))
    collide = MODELS.build(dict(type='HybridCollisionLoss', reduction='none'))
    before = collide(pen['vertices'], mano.faces)
    ref.refine(preds, samples)
    k = torch.as_tensor(K)
    for i, p in enumerate(preds):
        out = mano(
            pose=p.mano_pose[None],
            betas=p.mano_betas[None],
            transl=p.mano_transl[None])
        torch.testing.assert_close(
            out.vertices[0], p.vertices, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            out.joints[0], p.joints_3d, atol=1e-5, rtol=0)
        torch.testing.assert_close(p.joints_2d, project_points(p.joints_3d, k))
        torch.testing.assert_close(
            p.joints_3d[:, 0].mean(0),
            pen['root'][i].mean(0),
            atol=1e-6,
            rtol=0)
    after = collide(torch.stack([p.vertices for p in preds]), mano.faces)
    assert after.sum() < 0.9 * before.sum()


def test_reconstructor_refines_at_test_time_only(pairs_path, tmp_path):
    ref = _refiner(pairs_path)
    path = str(tmp_path / 'ref.pth')
    torch.save(dict(state_dict=ref.state_dict()), path)
    model = MODELS.build(
        dict(
            type='TopDownTwoHandReconstructor',
            data_preprocessor=dict(
                type='ImgDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1]),
            backbone=dict(type='mmpose.ResNet', depth=18, out_indices=(3, )),
            head=dict(
                type='TwoHandMANOHead',
                in_channels=512,
                num_layers=1,
                num_heads=2,
                ffn_dims=32),
            refiner=dict(
                type='TwoHandDiffusionRefiner',
                checkpoint=path,
                frozen=True,
                denoiser=SMALL_DENOISER,
                sampler=dict(num_steps=2),
                gate=dict(check='none')))).eval()
    samples = [
        HandDataSample(metainfo=dict(cam_intrinsics=K, input_size=(64, 64)))
        for _ in range(2)
    ]
    data = model.data_preprocessor(
        dict(
            inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)] * 2,
            data_samples=samples))
    with torch.no_grad():
        out = model(**data, mode='predict')
    # an untrained head puts both hands at the crop centre: they overlap
    assert [ds.pred_hands.refined for ds in out] == [True, True]
    assert 'unrefined_vertices' in out[0].pred_hands
    model.test_cfg['refine'] = False
    with torch.no_grad():
        out = model(**data, mode='predict')
    assert 'refined' not in out[0].pred_hands


# ---------------------------------------------------------------------------
# pairs: dataset augmentation and the tool
# ---------------------------------------------------------------------------
def test_pair_augmentations_are_exact(mano, pairs_path):
    ds = PenetrationPairsDataset(pairs_path, test_mode=True)
    item = ds[0]['inputs']

    def verts(it, p='x0'):
        x = encode_two_hands(it[f'{p}_pose'][None], it[f'{p}_betas'][None],
                             it[f'{p}_root'][None])
        ref_hands = _HANDS(x, it[f'{p}_root'][None])
        return ref_hands['vertices'][0]

    ref = _refiner(pairs_path)
    global _HANDS
    _HANDS = ref.hands_from_params
    v = verts(item)
    mirrored = PenetrationPairsDataset.mirror(item)
    torch.testing.assert_close(
        verts(mirrored), mirror_points(v.flip(0)), atol=1e-5, rtol=0)
    back = PenetrationPairsDataset.mirror(mirrored)
    for k in item:
        torch.testing.assert_close(back[k], item[k])
    angle = 0.4
    rolled = PenetrationPairsDataset.roll(item, angle)
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(verts(rolled), v @ rot.T, atol=1e-5, rtol=0)


@pytest.fixture(scope='module')
def tiny_synthetic(tmp_path_factory):
    from mmhand2p.synthetic import generate_synthetic_interhand
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_interhand(
        root,
        'train',
        4,
        num_cams=1,
        image_size=64,
        seed=0,
        workers=0,
        hand_type_probs=(1.0, 0.0, 0.0),
        coco_boxes=False)
    return root


def test_noise_pairs_tool(tiny_synthetic, tmp_path):
    tool = _tool()
    out = str(tmp_path / 'noise.npz')
    args = [
        'noise', '--data-root', tiny_synthetic, '--split', 'train', '--levels',
        '4'
    ]
    assert tool.main(args + ['--out', out]) == 0
    pairs = load_pairs(out)
    n = len(pairs['kind'])
    assert n >= 1 and (pairs['kind'] == 0).all()
    assert (pairs['c_volume'] >= 0.05).all() and (pairs['c_volume']
                                                  <= 10).all()
    assert ((pairs['level'] >= 1) & (pairs['level'] <= 4)).all()
    assert pairs['meta']['schedule']['levels'] == 4
    # the ground truth is the dataset's (its wrists are the joints' wrists)
    from mmhand2p.datasets import InterHand26MDataset
    ds = InterHand26MDataset(
        data_root=tiny_synthetic,
        split='train',
        hand_type='interacting',
        require_mano=True,
        pipeline=[],
        index_cache_dir=None)
    for k, i in enumerate(pairs['source_index']):
        np.testing.assert_allclose(
            pairs['x0_root'][k],
            ds.get_data_info(int(i))['joints_3d'][:, 0],
            atol=1e-5)
    # deterministic
    out2 = str(tmp_path / 'noise2.npz')
    tool.main(args + ['--out', out2])
    np.testing.assert_array_equal(load_pairs(out2)['c_pose'], pairs['c_pose'])


def test_estimator_pairs_tool_with_a_random_stage1_model(
        tiny_synthetic, tmp_path):
    """The weak-estimator path on a randomly initialised small stage-1
    model (its hands all sit at the crop centre, so they penetrate); the
    test pipeline mirrors the left hand's ground truth, which the tool maps
    back: X0's wrists are the crop-frame ground-truth wrists."""
    from mmengine.config import Config
    cfg_text = f"""
default_scope = 'mmhand2p'
model = dict(
    type='TopDownTwoHandReconstructor',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0, 0, 0],
                           std=[255, 255, 255], bgr_to_rgb=True),
    backbone=dict(type='mmpose.ResNet', depth=18, out_indices=(3, )),
    head=dict(type='TwoHandMANOHead', in_channels=512, num_layers=1,
              num_heads=2, ffn_dims=32, left_as_right=True))
test_dataloader = dict(
    batch_size=2,
    dataset=dict(
        type='InterHand26MDataset', data_root={tiny_synthetic!r},
        split='train', require_mano=True, test_mode=True,
        index_cache_dir=None,
        pipeline=[
            dict(type='LoadTwoHandImage'),
            dict(type='TwoHandCropAffine', input_size=(64, 64),
                 test_mode=True),
            dict(type='GenerateTwoHandTargets', left_as_right=True),
            dict(type='PackTwoHandInputs')]))
"""
    cfg_path = tmp_path / 'stage1.py'
    cfg_path.write_text(cfg_text)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_path)).model)
    ckpt = str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    out = str(tmp_path / 'est.npz')
    tool = _tool()
    assert tool.main(['estimator', str(cfg_path), ckpt, '--out', out]) == 0
    pairs = load_pairs(out)
    assert len(pairs['kind']) >= 1 and (pairs['kind'] == 1).all()
    assert (pairs['c_volume'] >= 0.05).all()
    from mmhand2p.registry import DATASETS
    ds = DATASETS.build(Config.fromfile(str(cfg_path)).test_dataloader.dataset)
    for k, i in enumerate(pairs['source_index']):
        gt = ds[int(i)]['data_samples'].gt_hands
        np.testing.assert_allclose(
            pairs['x0_root'][k], gt.joints_3d[:, 0].numpy(), atol=1e-5)


_HANDS = None
