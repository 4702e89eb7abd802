# Copyright (c) mmhand2p contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmhand2p.models.teachers import BasePriorTeacher
from mmhand2p.registry import MODELS

CALLS = []


@MODELS.register_module(force=True)
class _CountingTeacher(BasePriorTeacher):
    """A deterministic 'teacher': channel c of the output is the mean image
    intensity times (c + 1) (+ an offset per prior), at stride 16."""

    def __init__(self, prior, checkpoint=None, channels=8):
        super().__init__(prior, (64, 64), (0, 0, 0), (255, 255, 255),
                         channels)
        self.offset = ('keypoint', 'segmentation', 'depth').index(prior)

    def extract(self, images):
        CALLS.append(self.prior)
        b = images.shape[0]
        m = images.mean(dim=(1, 2, 3)).view(b, 1, 1, 1)
        scale = torch.arange(1, self.out_channels + 1).view(1, -1, 1, 1)
        return (m * scale + self.offset).expand(b, -1, 4, 4).clone()


def _neck(**kw):
    cfg = dict(
        type='FusionAlignmentNeck',
        in_channels=16,
        embed_dims=32,
        teacher_channels=8,
        num_layers=1,
        num_heads=4,
        ffn_dims=64,
        teachers={
            p: dict(type='_CountingTeacher', prior=p)
            for p in ('keypoint', 'segmentation', 'depth')
        })
    cfg.update(kw)
    return MODELS.build(cfg)


def test_fae_path_never_calls_teachers():
    CALLS.clear()
    neck = _neck()
    assert not neck.has_teachers
    feats = torch.randn(2, 16, 4, 4)
    fused, aux = neck(feats, inputs=torch.randn(2, 3, 64, 64))
    assert fused.shape == (2, 32, 4, 4) and 'fae_prior' in aux
    assert CALLS == [] and not neck.has_teachers
    assert not any('teacher' in k for k in neck.state_dict())


def test_distillation_loss_is_mse_to_mean_teacher_feature():
    CALLS.clear()
    neck = _neck()
    rgb = torch.full((2, 3, 64, 64), 51.0)
    rgb[1] = 102.0
    # the model hands the RGB images to forward; loss(aux, data_samples)
    _, aux = neck(torch.randn(2, 16, 4, 4), rgb=rgb)
    loss = neck.loss(aux, None)['loss_distill']
    assert sorted(CALLS) == ['depth', 'keypoint', 'segmentation']
    # normalised mean intensity 0.2 / 0.4; offsets 0, 1, 2 average to 1
    m = torch.tensor([0.2, 0.4]).view(2, 1, 1, 1)
    target = m * torch.arange(1, 9).view(1, -1, 1, 1) + 1.0
    expected = F.mse_loss(aux['fae_prior'], target.expand(2, 8, 4, 4))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # no gradient reaches the (frozen) teachers, the FAE learns
    loss.backward()
    assert neck.fae_head[0].weight.grad is not None
    assert all(p.grad is None for t in neck._teachers for p in t.parameters())


def test_priors_subset_and_baseline():
    CALLS.clear()
    neck = _neck(priors=('depth', ))
    _, aux = neck(torch.randn(1, 16, 4, 4), rgb=torch.zeros(1, 3, 64, 64))
    neck.loss(aux, None)
    assert CALLS == ['depth']
    base = _neck(priors=())
    fused, aux = base(torch.randn(1, 16, 4, 4))
    assert fused.shape == (1, 32, 4, 4) and aux == {}
    assert base.loss(aux, None) == {}
    assert not hasattr(base, 'fae_head')
    n_base = sum(p.numel() for p in base.parameters())
    assert n_base < sum(p.numel() for p in neck.parameters())


def test_starred_variant_runs_teachers_at_inference():
    CALLS.clear()
    neck = _neck(prior_source='teacher')
    fused, aux = neck(torch.randn(1, 16, 4, 4), rgb=torch.zeros(1, 3, 64, 64))
    assert len(CALLS) == 3 and aux == {}
    with pytest.raises(ValueError, match='RGB'):
        neck(torch.randn(1, 16, 4, 4))


def test_bad_configs(tmp_path):
    missing = str(tmp_path / 'sapiens_0.3b_depth.pth')
    with pytest.raises(FileNotFoundError, match='sapiens_0.3b_depth.pth'):
        _neck(teachers=dict(depth=dict(
            type='_CountingTeacher', prior='depth', checkpoint=missing)))
    with pytest.raises(ValueError, match='unknown prior'):
        _neck(priors=('normals', ))


def test_loss_has_one_signature():
    """loss(aux, data_samples): the old loss(aux, rgb) is refused with the
    way to pass the images, and no target at all is named."""
    neck = _neck(priors=('depth', ))
    rgb = torch.zeros(1, 3, 64, 64)
    _, aux = neck(torch.randn(1, 16, 4, 4))
    assert 'rgb' not in aux
    with pytest.raises(TypeError, match='forward'):
        neck.loss(aux, rgb)
    with pytest.raises(ValueError, match='no distillation target'):
        neck.loss(aux, None)
    _, aux = neck(torch.randn(1, 16, 4, 4), rgb=rgb)
    assert aux['rgb'] is rgb
    assert set(neck.loss(aux, None)) == {'loss_distill'}


@MODELS.register_module(force=True)
class _ImageTeacher(BasePriorTeacher):
    """A stride-1 'teacher': its feature map is its (normalised) first
    input channel, 8 times."""

    def __init__(self, prior, input_mode='letterbox'):
        super().__init__(prior, (64, 48), (0, 0, 0), (1, 1, 1), 8,
                         input_mode)

    def extract(self, images):
        return images[:, :1].expand(-1, 8, -1, -1)


@pytest.mark.parametrize('mode', ['new', 'old'])
def test_teacher_target_is_letterboxed_and_area_pooled(mode):
    """A square checkerboard crop in a 64 x 48 teacher: letterboxed and
    area-pooled to 4 x 4 it is its mean; stretched and bilinearly resized
    (the old behaviour, still reachable) it is what it was."""
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48),
                            indexing='ij')
    rgb = ((yy + xx) % 2).float().expand(1, 3, 48, 48) * 255
    # plus a vertical ramp the stretch distorts and the letterbox keeps
    rgb = rgb + yy.float()
    old = mode == 'old'
    neck = _neck(
        priors=('depth', ),
        teacher_channels=8,
        downsample='bilinear' if old else 'area',
        teachers=dict(depth=dict(
            type='_ImageTeacher', prior='depth',
            input_mode='stretch' if old else 'letterbox')))
    target = neck.teacher_prior(rgb, (4, 4))
    # each 12 x 12 block: the board's mean + the ramp's mean there
    rows = (127.5 + 12 * torch.arange(4.) + 5.5)[:, None].expand(4, 4)
    if old:
        expect = F.interpolate(
            F.interpolate(rgb, (64, 48), mode='bilinear'), (4, 4),
            mode='bilinear')[:, :1].expand(-1, 8, -1, -1)
        assert torch.equal(target, expect)
        # a linear teacher sees the ramp's rows at the same places either
        # way; the board makes the difference (point sample vs mean)
        assert torch.equal(target[0, 0], rows)
    else:
        assert torch.allclose(target[0, 0], rows)
        assert torch.equal(target[0, 0], target[0, 7])
    with pytest.raises(ValueError, match='downsample'):
        _neck(downsample='nearest')


def test_synthetic_teachers_target_is_unchanged_by_the_new_defaults():
    """The synthetic configs' teachers take the 128 x 128 crop at its own
    size and their 4 x 4 map is the FAE grid: letterbox + area pooling give
    bit for bit the old (stretch + bilinear) target."""
    torch.manual_seed(0)
    state = MODELS.build(dict(type='SyntheticWorldTeacher', prior='depth',
                              input_size=(128, 128))).state_dict()
    rgb = torch.rand(2, 3, 128, 128) * 255
    targets = []
    for input_mode, downsample in (('letterbox', 'area'),
                                   ('stretch', 'bilinear')):
        neck = _neck(
            priors=('depth', ),
            teacher_channels=128,
            downsample=downsample,
            teachers=dict(depth=dict(
                type='SyntheticWorldTeacher', prior='depth',
                input_size=(128, 128), input_mode=input_mode)))
        neck.teachers('cpu')[0].load_state_dict(state)
        targets.append(neck.teacher_prior(rgb, (4, 4)))
    assert torch.equal(targets[0], targets[1])
    assert targets[0].abs().sum() > 0
