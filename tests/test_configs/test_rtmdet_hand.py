# Copyright (c) mmhand2p contributors. All rights reserved.
"""configs/rtmdet_hand: the right/left hand detectors.

Every config parses and its model builds through mmhand2p's registry in
mmhand2p's default scope; the synthetic CPU config trains for 2 iterations
and tests through tools/train.py and tools/test.py on a tiny generated set.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from mmhand2p.synthetic import generate_synthetic_interhand

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(REPO, 'configs', 'rtmdet_hand')
SYNTHETIC = [
    'rtmdet_tiny_1xb16-cpu_synthetic-hands-256.py',
    'rtmdet_nano_1xb16-cpu_synthetic-hands-256.py',
    'rtmdet_nano_1xb8-25min-cpu_synthetic-hands-160.py',
]
TWO_CLASS = SYNTHETIC + ['rtmdet_tiny_8xb32-300e_coco-wholebody-hand.py']
ONE_CLASS = ['rtmdet_tiny_8xb32-210e_onehand10k.py']
HAND_CLASSES = ('right_hand', 'left_hand')


def _load(name):
    return Config.fromfile(osp.join(CFG_DIR, name))


def _all_pipelines(cfg):
    """Every transform list of a config: dataloaders and pipeline switches.
    """
    pipelines = []
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader']['dataset']
        pipelines.append(dataset['pipeline'])
    for hook in cfg.get('custom_hooks', []):
        if 'switch_pipeline' in hook:
            pipelines.append(hook['switch_pipeline'])
    return pipelines


def _build(model_cfg):
    """Build in mmhand2p's default scope and check the scope survives."""
    from mmhand2p.registry import MODELS
    init_default_scope('mmhand2p')
    model = MODELS.build(model_cfg)
    assert DefaultScope.get_current_instance().scope_name == 'mmhand2p'
    return model


@pytest.mark.parametrize('name', TWO_CLASS)
def test_two_class_configs(name):
    cfg = _load(name)
    assert cfg.model['_scope_'] == 'mmdet'
    assert cfg.model.bbox_head.num_classes == 2
    # no download: the ImageNet init_cfg URL of mmdet's config is removed
    assert cfg.model.backbone.get('init_cfg') is None
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader']['dataset']
        assert tuple(dataset['metainfo']['classes']) == HAND_CLASSES
    # a flip that keeps labels would swap handedness: the only flip allowed
    # is HandednessFlip, and CachedMixUp must not mirror the image it mixes
    # in (mmdet flips when uniform(0, 1) > flip_ratio)
    for pipeline in _all_pipelines(cfg):
        for t in pipeline:
            if 'Flip' in t['type']:
                assert t['type'].split('.')[-1] == 'HandednessFlip', name
            if t['type'].split('.')[-1] == 'CachedMixUp':
                assert t.get('flip_ratio', 0.5) >= 1.0, name

    model = _build(cfg.model)
    assert type(model).__name__ == 'RTMDet'
    assert type(model.backbone).__name__ == 'CSPNeXt'
    model.eval()
    with torch.no_grad():
        cls_scores, _ = model(torch.zeros(1, 3, 64, 64), mode='tensor')
    # strides 8 / 16 / 32, one channel per class (0 right, 1 left)
    assert [tuple(c.shape) for c in cls_scores] == [(1, 2, 8, 8), (1, 2, 4, 4),
                                                    (1, 2, 2, 2)]


def test_synthetic_paths_match_the_generator():
    cfg = _load(SYNTHETIC[0])
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader']['dataset']
        assert dataset['data_root'] == 'data/synthetic_interhand/'
        assert dataset['ann_file'] == (
            f'annotations/{split}/hand_boxes_{split}_coco.json')
        assert dataset['data_prefix'] == dict(img=f'images/{split}/')
    assert cfg.test_evaluator.ann_file == (
        'data/synthetic_interhand/annotations/test/hand_boxes_test_coco.json')


def test_nano_is_smaller_than_tiny():
    tiny = _build(_load(SYNTHETIC[0]).model)
    nano = _build(_load(SYNTHETIC[1]).model)
    n_tiny = sum(p.numel() for p in tiny.parameters())
    n_nano = sum(p.numel() for p in nano.parameters())
    # mmdet's RTMDet-tiny has 4.8M parameters, RTMPose's RTMDet-nano ~1M
    assert 4.5e6 < n_tiny < 5.2e6
    assert 0.8e6 < n_nano < 1.2e6
    nano.eval()
    with torch.no_grad():
        feats = nano.extract_feat(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 64, 64]  # neck width


def test_onehand10k_config_is_one_class():
    cfg = _load(ONE_CLASS[0])
    assert cfg.model.bbox_head.num_classes == 1
    assert tuple(
        cfg.train_dataloader.dataset.metainfo['classes']) == ('hand', )
    # side-agnostic class: flipping is allowed (and used)
    assert any(t['type'] == 'RandomFlip'
               for t in cfg.train_dataloader.dataset.pipeline)
    model = _build(cfg.model)
    model.eval()
    with torch.no_grad():
        cls_scores, _ = model(torch.zeros(1, 3, 64, 64), mode='tensor')
    assert cls_scores[0].shape[1] == 1


@pytest.fixture(scope='module')
def tiny_hand_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('syn_hands')
    for split, frames in (('train', 2), ('val', 1), ('test', 1)):
        generate_synthetic_interhand(
            str(root),
            split,
            num_frames=frames,
            num_cams=2,
            image_size=128,
            seed=1)
        assert osp.isfile(root / 'annotations' / split /
                          f'hand_boxes_{split}_coco.json')
    return str(root)


def _run(args, cwd):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    res = subprocess.run([sys.executable, *map(str, args)],
                         cwd=str(cwd),
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f'{args} failed:\n{out[-6000:]}'
    return out


def _data_options(root):
    root = root.rstrip('/') + '/'
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.batch_size=2',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False',
        ]
    for split in ('val', 'test'):
        opts.append(f'{split}_evaluator.ann_file={root}annotations/{split}/'
                    f'hand_boxes_{split}_coco.json')
    return opts


def test_train_and_test_through_tools(tiny_hand_set, tmp_path):
    config = osp.join(CFG_DIR, SYNTHETIC[1])  # RTMDet-nano
    work_dir = tmp_path / 'work'
    opts = _data_options(tiny_hand_set)
    out = _run([
        osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--cfg-options', *opts, 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ], tmp_path)
    assert re.search(r'Iter\(train\) \[2/2\].*loss_cls', out), out[-3000:]
    assert 'coco/bbox_mAP' in out  # validation ran CocoMetric
    ckpt_path = work_dir / 'iter_2.pth'
    assert ckpt_path.is_file()
    ckpt = torch.load(str(ckpt_path), map_location='cpu', weights_only=True)
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == HAND_CLASSES

    out = _run([
        osp.join(REPO, 'tools', 'test.py'), config, ckpt_path, '--work-dir',
        tmp_path / 'test', '--cfg-options', *opts
    ], tmp_path)
    metrics = re.search(r'Iter\(test\).*', out)
    assert metrics is not None, out[-3000:]
    for key in ('coco/bbox_mAP:', 'coco/bbox_mAP_50:',
                'coco/right_hand_precision:', 'coco/left_hand_precision:'):
        assert key in metrics.group(0), metrics.group(0)
    assert glob.glob(str(tmp_path / 'test' / '*' / '*.log'))


def test_tiny_config_trains_on_its_pipeline(tiny_hand_set):
    """One optimisation step of RTMDet-tiny on its own train pipeline (the
    data settings are shared with nano, which goes through the tools)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS
    cfg = _load(SYNTHETIC[0])
    cfg.train_dataloader.dataset.data_root = tiny_hand_set
    init_default_scope('mmdet')
    try:
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        batch = pseudo_collate([dataset[0], dataset[1]])
    finally:
        init_default_scope('mmhand2p')
    samples = batch['data_samples']
    assert all(s.gt_instances.labels.max() <= 1 for s in samples)
    assert tuple(batch['inputs'][0].shape) == (3, 256, 256)

    torch.manual_seed(0)
    model = _build(cfg.model)
    model.train()
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    total = sum(
        sum(v) if isinstance(v, (list, tuple)) else v for v in losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    grad = model.bbox_head.rtm_cls[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
