# Copyright (c) mmhand2p contributors. All rights reserved.
import sys
import os.path as osp

import numpy as np
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
