# Copyright (c) mmhand2p contributors. All rights reserved.
"""Mixing components of mmhand2p, mmpose and mmdet through the registries."""
import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

from mmhand2p.registry import MODELS
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
