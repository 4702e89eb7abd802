# Copyright (c) mmhand2p contributors. All rights reserved.
"""Mixing components of mmhand2p, mmpose and mmdet through the registries."""
import os.path as osp
import re

import pytest
import torch
from mmengine.dataset import Compose
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn
from torch.utils.data import Dataset

from mmhand2p.registry import DATASETS, MODELS
from mmhand2p.utils import set_default_scope


@MODELS.register_module(force=True)
class _BackboneHolder(nn.Module):
    """An mmhand2p component that builds a child from its config."""

    def __init__(self, backbone, detector=None):
        super().__init__()
        self.backbone = MODELS.build(backbone)
        self.detector = MODELS.build(detector) if detector else None


def _tiny_rtmdet() -> dict:
    """RTMDet-tiny as configs/rtmdet_hand/_base_/rtmdet-tiny_hand.py builds
    it (mmdet's rtmdet_tiny_8xb32-300e_coco.py, 2 hand classes), for one
    CPU process: BN instead of SyncBN, and a light test_cfg (1000 boxes
    before NMS, score 0.05, IoU 0.6, 100 per image)."""
    from mmengine.config import Config

    def sync_to_bn(x):
        if isinstance(x, dict):
            return {
                k: ('BN' if k == 'type' and v == 'SyncBN' else sync_to_bn(v))
                for k, v in x.items()
            }
        if isinstance(x, (list, tuple)):
            return type(x)(sync_to_bn(v) for v in x)
        return x

    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(
        osp.join(root, 'configs', 'rtmdet_hand', '_base_',
                 'rtmdet-tiny_hand.py'))
    model = sync_to_bn(cfg.model.to_dict())
    model['test_cfg'] = dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.6),
        max_per_img=100)
    return model


TINY_RTMDET = _tiny_rtmdet()


def test_mmpose_backbone_in_mmhand2p_config():
    set_default_scope('mmhand2p')
    from mmpose.models.backbones import ResNet
    model = MODELS.build(
        dict(
            type='_BackboneHolder',
            backbone=dict(type='mmpose.ResNet', depth=18,
                          out_indices=(3, ))))
    assert isinstance(model.backbone, ResNet)
    feats = model.backbone(torch.zeros(1, 3, 64, 64))
    assert feats[-1].shape == (1, 512, 2, 2)  # stride 32
    assert DefaultScope.get_current_instance().scope_name == 'mmhand2p'


def test_nested_mmdet_rtmdet_subtree():
    set_default_scope('mmhand2p')
    from mmdet.models.detectors import RTMDet
    model = MODELS.build(
        dict(
            type='_BackboneHolder',
            backbone=dict(type='mmpose.ResNet', depth=18),
            detector=TINY_RTMDET))
    assert isinstance(model.detector, RTMDet)
    # its children resolved in mmdet's scope (CSPNeXt is mmdet's)
    assert type(model.detector.backbone).__name__ == 'CSPNeXt'
    model.detector.eval()
    with torch.no_grad():
        cls, reg = model.detector(torch.zeros(1, 3, 64, 64), mode='tensor')
    assert [c.shape[1] for c in cls] == [2, 2, 2]  # right / left hand
    assert [tuple(c.shape[-2:]) for c in cls] == [(8, 8), (4, 4), (2, 2)]
    # the scope switch made by _scope_ is undone after the build
    assert DefaultScope.get_current_instance().scope_name == 'mmhand2p'


def test_mmhand2p_builds_after_init_detector(tmp_path):
    from mmdet.apis import init_detector as mmdet_init_detector

    from mmhand2p.apis import init_detector
    set_default_scope('mmhand2p')
    hand_meta = dict(classes=('right_hand', 'left_hand'),
                     palette=[(255, 64, 64), (64, 64, 255)])
    cfg = dict(
        model=TINY_RTMDET,
        default_scope='mmdet',
        test_dataloader=dict(
            dataset=dict(type='CocoDataset', metainfo=hand_meta)))

    # mmdet's own init_detector leaves the default scope at 'mmdet' ...
    from mmengine.config import Config
    mmdet_init_detector(Config(cfg), None, device='cpu')
    assert DefaultScope.get_current_instance().scope_name == 'mmdet'
    with pytest.raises(KeyError, match='MANOLayer'):
        MODELS.build(dict(type='MANOLayer'))

    # ... ours restores mmhand2p's, so unprefixed mmhand2p types resolve
    set_default_scope('mmhand2p')
    det = init_detector(cfg, None, device='cpu')
    assert type(det).__name__ == 'RTMDet'
    assert DefaultScope.get_current_instance().scope_name == 'mmhand2p'
    layer = MODELS.build(dict(type='MANOLayer'))
    assert type(layer).__name__ == 'MANOLayer'


def test_unknown_component_lists_close_matches():
    set_default_scope('mmhand2p')
    with pytest.raises(KeyError, match='Close matches: TwoHandMANOHead'):
        MODELS.build(dict(type='TwoHandManoHead'))
    with pytest.raises(KeyError, match=r'Close matches: mmpose\.ResNet'):
        MODELS.build(dict(type='mmpose.ResNte'))
    # an error raised while building a nested child keeps its own hint
    with pytest.raises(KeyError, match='Close matches: MaskedL1Loss'):
        MODELS.build(
            dict(type='TwoHandMANOHead',
                 loss_pose=dict(type='MaskedL1Los')))


# ---------------------------------------------------------------------------
# the same hint for every component the Runner builds from a config
# ---------------------------------------------------------------------------
@MODELS.register_module(force=True)
class _TinyRunnerModel(BaseModel):
    """One linear layer: enough for a Runner to build optimizers."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.fc(torch.stack(inputs)).sum())


@DATASETS.register_module(force=True)
class _PipelineDataset(Dataset):
    """Two samples through a pipeline of registered transforms."""

    def __init__(self, pipeline=()):
        self.pipeline = Compose(list(pipeline))

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.pipeline(dict(inputs=torch.ones(2)))


def _runner_cfg(tmp_path, name):
    loader = dict(
        batch_size=2,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='_PipelineDataset'))
    return dict(
        experiment_name=f'hint_{name}',
        default_scope='mmhand2p',
        work_dir=str(tmp_path),
        model=dict(type='_TinyRunnerModel'),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=1, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=1)
        ],
        val_dataloader=loader,
        val_cfg=dict(),
        val_evaluator=dict(type='TwoHandMetric'),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')


def _set(*keys, value):
    """An edit of the runner config: ``cfg[k0][k1]... = value``."""

    def edit(cfg):
        node = cfg
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


# misspelled type -> the class the hint must name first
MISSPELLED = {
    'model': (_set('model', 'type', value='TopDownTwoHandReconstructr'),
              'TopDownTwoHandReconstructor'),
    'dataset': (_set('train_dataloader', 'dataset',
                     value=dict(type='InterHand26mDataset')),
                'InterHand26MDataset'),
    'transform': (_set('train_dataloader', 'dataset',
                       value=dict(type='_PipelineDataset',
                                  pipeline=[dict(type='PackTwoHandInput')])),
                  'PackTwoHandInputs'),
    'hook': (_set('custom_hooks', value=[dict(type='FiniteLosHook')]),
             'FiniteLossHook'),
    'visualizer': (_set('visualizer',
                        value=dict(type='TwoHandLocalVisualiser')),
                   'TwoHandLocalVisualizer'),
    'vis_backend': (_set('visualizer', value=dict(
        type='TwoHandLocalVisualizer',
        vis_backends=[dict(type='LocalVisBakend')])), 'LocalVisBackend'),
    'optimizer': (_set('optim_wrapper', 'optimizer', 'type', value='AdamWW'),
                  'AdamW'),
    'optim_wrapper': (_set('optim_wrapper', 'type', value='AmpOptimWraper'),
                      'AmpOptimWrapper'),
    'param_scheduler': (_set('param_scheduler', 0, 'type',
                             value='LinearLRR'), 'LinearLR'),
    # converted from epochs: mmengine's message names no scope here
    'param_scheduler_by_epoch': (_set('param_scheduler', value=[
        dict(type='CosineAnnealingLRR', by_epoch=True, T_max=1,
             convert_to_iter_based=True)
    ]), 'CosineAnnealingLR'),
    'metric': (_set('val_evaluator', 'type', value='TwoHandMetrik'),
               'TwoHandMetric'),
    'data_sampler': (_set('train_dataloader', 'sampler', 'type',
                          value='DefaultSamplr'), 'DefaultSampler'),
    'loop': (_set('train_cfg', value=dict(type='IterBasedTrainLop',
                                          max_iters=1)),
             'IterBasedTrainLoop'),
    'log_processor': (_set('log_processor', value=dict(type='LogProcesor')),
                      'LogProcessor'),
}


@pytest.mark.parametrize('kind', sorted(MISSPELLED))
def test_runner_built_components_list_close_matches(tmp_path, kind):
    from mmengine.config import Config
    from mmengine.runner import Runner
    edit, expected = MISSPELLED[kind]
    cfg = _runner_cfg(tmp_path, kind)
    edit(cfg)
    with pytest.raises(KeyError) as info:
        # the model, hooks and visualizer are built here ...
        runner = Runner.from_cfg(Config(cfg))
        # ... dataloaders, optimizer, schedulers, metrics and loops here
        runner.train()
    msg = str(info.value)
    assert re.search(rf'Close matches: {expected}\b', msg), msg
    assert msg.count('Close matches:') == 1, msg


def test_runner_build_calls_list_close_matches(tmp_path):
    """The Runner's public build methods, one by one."""
    from mmengine.runner import Runner
    cfg = _runner_cfg(tmp_path, 'build_calls')
    runner = Runner(
        model=cfg['model'],
        work_dir=cfg['work_dir'],
        train_dataloader=cfg['train_dataloader'],
        train_cfg=cfg['train_cfg'],
        optim_wrapper=cfg['optim_wrapper'],
        experiment_name=cfg['experiment_name'],
        default_scope='mmhand2p',
        log_level='WARNING')
    with pytest.raises(KeyError, match=r'Close matches: AdamW\b'):
        runner.build_optim_wrapper(
            dict(optimizer=dict(type='AdamWW', lr=1e-3)))
    optim_wrapper = runner.build_optim_wrapper(
        dict(optimizer=dict(type='AdamW', lr=1e-3)))
    assert type(optim_wrapper.optimizer).__name__ == 'AdamW'
    runner.optim_wrapper = optim_wrapper
    with pytest.raises(KeyError, match=r'Close matches: MultiStepLR\b'):
        runner.build_param_scheduler(
            [dict(type='MultiStepLRR', milestones=[1])])
    with pytest.raises(KeyError, match=r'Close matches: TwoHandMetric\b'):
        runner.build_evaluator(dict(type='TwoHandMetrc'))
    with pytest.raises(KeyError, match=r'Close matches: TwoHandCropAffine'):
        runner.build_dataloader(
            dict(
                batch_size=1,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(
                    type='_PipelineDataset',
                    pipeline=[dict(type='TwoHandCropAfine')])))


def test_hint_names_the_scope_that_was_searched():
    """A misspelled mmdet name inside an mmdet subtree: the hint lists
    mmdet's own names, unprefixed (that is how the subtree spells them)."""
    from mmengine.registry import MODELS as ROOT_MODELS
    set_default_scope('mmhand2p')
    with pytest.raises(KeyError, match=r'Close matches: CSPNeXt\b'):
        ROOT_MODELS.build(dict(_scope_='mmdet', type='CSPNeXtt'))
    # a plain mmengine build outside mmhand2p's scope gets it too
    with pytest.raises(KeyError, match=r'Close matches: .*\bLinear\b'):
        ROOT_MODELS.build(dict(_scope_='mmengine', type='Linearr'))
    assert DefaultScope.get_current_instance().scope_name == 'mmhand2p'
