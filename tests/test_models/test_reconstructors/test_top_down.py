# Copyright (c) mmhand2p contributors. All rights reserved.
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.registry import MODELS
from mmhand2p.structures import HandDataSample

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'test_necks'))
from test_fusion_alignment import CALLS  # noqa: E402


def _model():
    return MODELS.build(
        dict(
            type='TopDownTwoHandReconstructor',
            data_preprocessor=dict(
                type='ImgDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True),
            backbone=dict(type='mmpose.ResNet', depth=18, out_indices=(3, )),
            neck=dict(
                type='FusionAlignmentNeck', in_channels=512, embed_dims=64,
                teacher_channels=8, num_layers=1, num_heads=4, ffn_dims=64,
                teachers={p: dict(type='_CountingTeacher', prior=p)
                          for p in ('keypoint', 'segmentation', 'depth')}),
            head=dict(type='TwoHandMANOHead', in_channels=64, num_heads=4,
                      ffn_dims=64)))


def _batch(n=2):
    samples = []
    for _ in range(n):
        ds = HandDataSample(metainfo=dict(
            cam_intrinsics=np.array([[300, 0, 63.5], [0, 300, 63.5],
                                     [0, 0, 1]], np.float32),
            input_size=(128, 128), flip_left=True))
        ds.gt_hands = InstanceData(
            hand_valid=torch.ones(2, dtype=torch.bool),
            joints_3d=torch.rand(2, 21, 3) * 0.1 + torch.tensor([0, 0, .6]),
            joints_3d_valid=torch.ones(2, 21))
        samples.append(ds)
    img = torch.randint(0, 255, (n, 3, 128, 128), dtype=torch.uint8)
    return dict(inputs=list(img), data_samples=samples)


def test_deployed_model_has_no_teacher_and_predict_never_calls_one():
    CALLS.clear()
    model = _model().eval()
    names = [n for n, _ in model.named_parameters()]
    assert not any('teacher' in n for n in names)
    data = model.data_preprocessor(_batch())
    with torch.no_grad():
        out = model(**data, mode='predict')
    assert CALLS == [] and model.teachers_built() is False
    assert out[0].pred_hands.joints_3d.shape == (2, 21, 3)
    # training builds and calls the teachers, still outside the parameters
    model.train()
    losses = model(**model.data_preprocessor(_batch(), True), mode='loss')
    assert 'loss_distill' in losses and len(CALLS) == 3
    assert [n for n, _ in model.named_parameters()] == names
    assert not any('teacher' in k for k in model.state_dict())


def test_rgb_recovered_for_teachers():
    model = _model()
    batch = _batch(1)
    bgr = batch['inputs'][0].float()
    data = model.data_preprocessor(batch)
    rgb = model._rgb(data['inputs'])[0]
    assert torch.allclose(rgb, bgr.flip(0), atol=1e-3)


class _StubRefiner:
    """Moves every offered hand by 1 cm in x; advances a fake clock."""

    batch_invariant = False

    def __init__(self, clock=None):
        self.calls = []
        self.clock = clock

    def refine(self, preds, samples):
        self.calls.append(len(preds))
        if self.clock is not None:
            self.clock[0] += 2.0
        for p in preds:
            p.joints_3d = p.joints_3d + torch.tensor([0.01, 0, 0])
            p.vertices = p.vertices + torch.tensor([0.01, 0, 0])
            p.set_metainfo(dict(refined=True))
        return preds


def test_contract_and_per_sample_refine_mask(monkeypatch):
    """predict(refine=None | bool | mask): False entries never reach the
    refiner, True ones do with their stage-1 hands kept; stage_times_ms
    charges the refiner's time to 'refinement' (None when off)."""
    from mmhand2p.models.reconstructors import BaseTwoHandReconstructor
    from mmhand2p.utils import timing
    now = [10.0]
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: now[0])
    model = _model().eval()
    assert isinstance(model, BaseTwoHandReconstructor)
    data = model.data_preprocessor(_batch(2))
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        assert isinstance(feats, torch.Tensor)
        assert feats.shape == (2, 64, 4, 4)
        assert model.refines is False
        base = [
            ds.pred_hands.joints_3d.clone()
            for ds in model.predict(data['inputs'], data['data_samples'])
        ]
        times = data['data_samples'][0].metainfo['stage_times_ms']
        assert times == dict(reconstruction=0.0, refinement=None)
        stub = _StubRefiner(now)
        model.refiner = stub
        assert model.refines is True

        def run(refine):
            d = model.data_preprocessor(_batch(2))
            d['inputs'] = data['inputs']
            return model.predict(d['inputs'], d['data_samples'], refine)

        out = run([False, True])
        assert stub.calls == [1]
        assert 'refined' not in out[0].pred_hands.metainfo
        assert 'unrefined_joints_3d' not in out[0].pred_hands
        torch.testing.assert_close(out[0].pred_hands.joints_3d, base[0])
        hands = out[1].pred_hands
        assert hands.metainfo['refined'] is True
        torch.testing.assert_close(hands.unrefined_joints_3d, base[1])
        torch.testing.assert_close(hands.joints_3d - base[1],
                                   torch.tensor([0.01, 0, 0]).expand(2, 21, 3))
        assert out[1].metainfo['stage_times_ms'] == dict(
            reconstruction=0.0, refinement=2000.0)
        # None: every sample (the config's default); True: the same
        for refine in (None, True):
            run(refine)
        assert stub.calls == [1, 2, 2]
        # nothing offered: the refiner is on but had no work
        out = run([False, False])
        assert stub.calls == [1, 2, 2]
        assert out[0].metainfo['stage_times_ms']['refinement'] == 0.0
        # refine=False, or the config switched the refiner off
        out = run(False)
        assert out[0].metainfo['stage_times_ms']['refinement'] is None
        model.test_cfg['refine'] = False
        assert model.refines is False
        run([True, True])
        assert stub.calls == [1, 2, 2]
        with pytest.raises(ValueError, match='3 entries for 2 samples'):
            model.test_cfg['refine'] = True
            run([True, True, False])


def test_loss_reads_cached_prior_features_without_teachers():
    """Samples carrying prior_features (LoadPriorFeatures): the distillation
    target is their mean, no teacher is built or called."""
    import torch.nn.functional as F
    from mmengine.structures import BaseDataElement
    CALLS.clear()
    model = _model().train()
    data = model.data_preprocessor(_batch(2), True)
    priors = ('keypoint', 'segmentation', 'depth')
    g = torch.Generator().manual_seed(0)
    feats = {p: torch.randn(2, 8, 4, 4, generator=g) for p in priors}
    affine = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    for i, ds in enumerate(data['data_samples']):
        ds.set_metainfo(dict(crop_affine=affine, img_id=i))
        item = BaseDataElement(
            metainfo=dict(priors=priors, input_size=(128, 128)))
        for p in priors:
            item.set_field(feats[p][i].half(), p)
        item.crop_affine = torch.from_numpy(affine)
        ds.prior_features = item
    losses = model.loss(data['inputs'], data['data_samples'])
    assert CALLS == [] and model.teachers_built() is False
    _, aux = model._features(data['inputs'])
    target = sum(f.half().float() for f in feats.values()) / 3
    expected = F.mse_loss(aux['fae_prior'], target)
    torch.testing.assert_close(losses['loss_distill'], expected)
