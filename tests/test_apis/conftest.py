# Copyright (c) mmhand2p contributors. All rights reserved.
"""Shared fixtures of the API tests: a tiny ``DetectThenReconstruct``
(random weights, saved as a config file and a checkpoint) and synthetic
photos with two, one and no hands (``tools/misc/make_demo_sample.py``)."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, osp.join(REPO, 'tests'))
from test_registry import TINY_RTMDET  # noqa: E402

sys.path.insert(0, HERE)
from _apis_helpers import load_module  # noqa: E402

TINY_RECONSTRUCTOR = dict(
    type='TopDownTwoHandReconstructor',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='mmpose.ResNet', depth=18, out_indices=(3, )),
    head=dict(
        type='TwoHandMANOHead',
        in_channels=512,
        num_layers=1,
        num_heads=4,
        ffn_dims=64))


@pytest.fixture(scope='session')
def tiny_model_files(tmp_path_factory):
    """``(config_path, checkpoint_path)`` of a tiny whole-image model."""
    from mmhand2p.registry import MODELS
    root = tmp_path_factory.mktemp('tiny_model')
    cfg = Config(
        dict(
            default_scope='mmhand2p',
            model=dict(
                type='DetectThenReconstruct',
                detector=TINY_RTMDET,
                reconstructor=TINY_RECONSTRUCTOR,
                det_input_size=(128, 128),
                crop_input_size=(64, 64),
                focal_factor=1.2)))
    config = str(root / 'tiny_detect_reconstruct.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    checkpoint = str(root / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    return config, checkpoint


@pytest.fixture(scope='session')
def samples(tmp_path_factory):
    """Synthetic 640 x 480 photos: ``{'two' | 'right' | 'none': info}`` with
    ``path``, ``bboxes`` ``(N, 4)``, ``labels`` ``(N,)``, ``intrinsics``."""
    tool = load_module('tools/misc/make_demo_sample.py', 'make_demo_sample')
    root = tmp_path_factory.mktemp('samples')
    return {
        kind: tool.make_sample(str(root / f'{kind}.jpg'), kind, seed=0)
        for kind in ('two', 'right', 'none')
    }
