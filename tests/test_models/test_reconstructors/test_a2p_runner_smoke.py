# Copyright (c) mmhand2p contributors. All rights reserved.
"""The synthetic A2P config through mmengine's real Runner: 2 training
iterations (with the distillation from the frozen teachers), validation and
test with the two-hand metric."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmhand2p.synthetic import generate_synthetic_interhand

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIG = osp.join(REPO, 'configs/a2p/synthetic/'
                  'a2p_res18_1xb16-cpu_synthetic-128x128.py')


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('syn')
    for split, frames in (('train', 2), ('val', 1), ('test', 1)):
        generate_synthetic_interhand(
            str(root), split, num_frames=frames, num_cams=2, image_size=128,
            seed=1, coco_boxes=False)
    return str(root)


def test_train_val_test_through_runner(tiny_set, tmp_path):
    cfg = Config.fromfile(CONFIG)
    for t in cfg.model.neck.teachers.values():
        t.checkpoint = None  # random frozen teachers: machinery only
    for name in ('train', 'val', 'test'):
        dl = cfg[f'{name}_dataloader']
        dl.batch_size = 2
        dl.num_workers = 0
        dl.persistent_workers = False
        dl.dataset.data_root = tiny_set
        dl.dataset.index_cache_dir = None
    cfg.train_dataloader.dataset.require_mano = True
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = 'a2p_smoke'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert runner.model.teachers_built()  # distillation ran
    assert not any('teacher' in k for k in runner.model.state_dict())
    metrics = runner.test()
    keys = ' '.join(metrics)
    assert 'MPJPE' in keys and 'MRRPE' in keys
    # finite wherever the subset has samples (an empty subset is NaN)
    for key, value in metrics.items():
        subset = 'IH' if key.endswith('_IH') or 'MRRPE' in key else (
            'SH' if key.endswith('_SH') else 'all')
        if metrics[f'two_hand/num_{subset}'] > 0:
            assert value == value, key
    ckpt = torch.load(osp.join(str(tmp_path), 'iter_2.pth'),
                      weights_only=True)
    assert ckpt['meta']['iter'] == 2
