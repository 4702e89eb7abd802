# Copyright (c) mmhand2p contributors. All rights reserved.
"""A toy model, dataset and hook for the FiniteLossHook tests.

Imported by ``test_finite_loss_hook.py`` and, through a config's
``custom_imports``, by the ``torchrun`` workers of
``test_finite_loss_ddp.py`` (which put this folder on ``PYTHONPATH``).
"""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.structures import BaseDataElement
from torch import nn
from torch.utils.data import Dataset

from mmhand2p.registry import DATASETS, HOOKS, MODELS

NAN = float('nan')


@MODELS.register_module(force=True)
class _FiniteToy(BaseModel):
    """``fc(x)`` fitted to a target.

    A sample flagged ``poison_grad`` adds ``0 * sqrt(b - b)``: a finite
    loss (0) whose gradient is NaN. A sample with a NaN ``aux`` makes the
    term ``loss_aux`` NaN without touching the gradients (it does not
    depend on the weights).
    """

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(torch.stack(inputs))
        if mode != 'loss':
            return out
        y = torch.stack([s.target for s in data_samples])
        losses = dict(
            loss_fit=((out - y)**2).mean(),
            loss_reg=self.fc.weight.pow(2).sum() * 1e-3,
            loss_aux=torch.stack([s.aux for s in data_samples]).mean() * 0,
            acc=out.new_tensor(1.0))  # logged, not a loss
        if any(bool(s.poison_grad) for s in data_samples):
            b = self.fc.bias
            losses['loss_fit'] = losses['loss_fit'] + 0 * (
                b - b.detach()).sqrt().sum()
        return losses


@DATASETS.register_module(force=True)
class _FiniteToyData(Dataset):
    """8 samples. ``nan_at``: samples whose target is NaN; ``poison_at``:
    samples whose loss has a NaN gradient; ``aux_nan_at``: samples whose
    (weight-independent) ``loss_aux`` is NaN."""

    def __init__(self, nan_at=(), poison_at=(), aux_nan_at=()):
        self.nan_at, self.poison_at = set(nan_at), set(poison_at)
        self.aux_nan_at = set(aux_nan_at)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8.0, 1.0 - i / 8.0])
        y = x.sum(0, keepdim=True) * 3 - 1
        if i in self.nan_at:
            y = y * NAN
        return dict(
            inputs=x,
            data_samples=BaseDataElement(
                metainfo=dict(img_path=f'toy_{i:03d}.png', sample_idx=i),
                target=y,
                aux=torch.tensor(NAN if i in self.aux_nan_at else 0.0),
                poison_grad=torch.tensor(i in self.poison_at)))


@HOOKS.register_module(force=True)
class _DumpRankStateHook(Hook):
    """After training, every rank saves its weights to
    ``work_dir/rank<r>.pth`` (the checkpoint hook saves rank 0's only)."""

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        torch.save({
            k: v.detach().cpu()
            for k, v in model.state_dict().items()
        }, osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
