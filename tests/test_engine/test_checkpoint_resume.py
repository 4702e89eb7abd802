# Copyright (c) mmhand2p contributors. All rights reserved.
"""Saving and resuming through mmengine's Runner under torch >= 2.6."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmhand2p.registry import DATASETS, HOOKS, MODELS


@HOOKS.register_module(force=True)
class _RecordStartHook(Hook):
    """Records epoch, iteration, lr and momentum at each epoch start."""
    records = []

    def before_train_epoch(self, runner):
        state = runner.optim_wrapper.optimizer.state_dict()['state']
        buf = state[0]['momentum_buffer'].clone() if state else None
        self.records.append(
            dict(epoch=runner.epoch, iter=runner.iter,
                 lr=runner.optim_wrapper.get_lr()['lr'][0], momentum=buf))


@MODELS.register_module(force=True)
class _ToyRegressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.fc(x)
        if mode == 'loss':
            y = torch.stack(data_samples) if isinstance(data_samples,
                                                        list) else data_samples
            return dict(loss=((out - y)**2).mean())
        return out


@DATASETS.register_module(force=True)
class _ToyData(Dataset):

    def __len__(self):
        return 12

    def __getitem__(self, i):
        x = torch.tensor([i / 12.0, 1.0 - i / 12.0])
        return dict(inputs=x, data_samples=x.sum(0, keepdim=True) * 3 - 1)


def _cfg(work_dir, max_epochs, resume=False):
    return dict(
        model=dict(type='_ToyRegressor'),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dict(type='_ToyData'),
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        # the schedule of a 3-epoch run; the first run is cut after 2 epochs
        param_scheduler=dict(
            type='MultiStepLR', milestones=[2], gamma=0.1, begin=0, end=3),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmhand2p',
        # a unique name: runners made within one second would otherwise
        # share mmengine's (timestamp-named) message hub
        experiment_name=f'{osp.basename(str(work_dir))}-{max_epochs}-{resume}',
        randomness=dict(seed=0),
        resume=resume,
        custom_hooks=[dict(type='_RecordStartHook')],
        custom_imports=dict(imports=['mmhand2p.engine']),
    )


def test_train_2_resume_to_3_equals_train_3(tmp_path):
    # reference: 3 epochs in one go
    ref = Runner.from_cfg(_cfg(tmp_path / 'ref', 3))
    ref.train()
    ref_state = copy.deepcopy(ref.model.state_dict())

    run = Runner.from_cfg(_cfg(tmp_path / 'run', 2))
    run.train()
    ckpt = osp.join(tmp_path / 'run', 'epoch_2.pth')
    # the checkpoint loads with weights_only=True (torch >= 2.6 default)
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert state['meta']['epoch'] == 2 and state['meta']['iter'] == 6
    assert 'momentum_buffer' in str(state['optimizer']['state'])
    saved_momentum = state['optimizer']['state'][0]['momentum_buffer']

    resumed = Runner.from_cfg(_cfg(tmp_path / 'run', 3, resume=True))
    _RecordStartHook.records.clear()
    resumed.train()
    # it trained one epoch, starting from the saved epoch / iteration,
    # optimizer state and learning-rate schedule (lr x0.1 after epoch 2)
    assert len(_RecordStartHook.records) == 1
    start = _RecordStartHook.records[0]
    assert start['epoch'] == 2 and start['iter'] == 6
    assert torch.equal(start['momentum'], saved_momentum)
    assert start['lr'] == pytest.approx(0.005)
    assert resumed.epoch == 3 and resumed.iter == 9
    for k, v in resumed.model.state_dict().items():
        assert torch.allclose(v, ref_state[k], atol=1e-7), k
    # the log history survived the round trip
    hub = resumed.message_hub
    # 6 iterations logged before the resume + 3 after
    assert len(hub.get_scalar('train/loss').data[0]) == 9
