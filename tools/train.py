#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Train a model from a config with mmengine's Runner.

Examples::

    python tools/train.py CONFIG
    python tools/train.py CONFIG --work-dir work_dirs/exp1 --amp
    python tools/train.py CONFIG --resume                 # latest checkpoint
    # a checkpoint of your choice: iter_N.pth for iteration-based configs
    # (the synthetic ones, train_cfg.by_epoch=False), epoch_N.pth for
    # epoch-based ones (the InterHand2.6M ones)
    python tools/train.py CONFIG --resume work_dirs/exp1/iter_2000.pth
    python tools/train.py CONFIG --resume work_dirs/exp1/epoch_3.pth
    python tools/train.py CONFIG --cfg-options train_cfg.max_epochs=5 \\
        train_dataloader.batch_size=16
    bash tools/dist_train.sh CONFIG 8                     # 8 GPUs (torchrun)

Interruptions: checkpoints are written atomically (``SafeCheckpointHook``
in every config), so a run killed at any moment, even in the middle of a
save, resumes with ``--resume`` from its last complete checkpoint; a
``last_checkpoint`` that names a missing or truncated file (left by an
older, non-atomic hook) falls back to the newest complete checkpoint in the
work dir. A NaN / Inf loss or gradient stops the run before the optimizer
step, naming the iteration, the loss terms and the samples
(``FiniteLossHook``); ``--cfg-options
default_hooks.finite_check.nonfinite=skip`` skips such steps instead.

See ``docs/user_guides/train_and_test.md``.
"""
import argparse
import logging
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

#: optimizer wrappers that already do mixed precision
_AMP_WRAPPERS = ('AmpOptimWrapper', 'BF16AutocastOptimWrapper')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmhand2p model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume training: from the given checkpoint, or, without a '
        'path, from the latest checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: AmpOptimWrapper (float16, dynamic loss '
        'scaling) on GPU; without CUDA, bfloat16 autocast '
        '(BF16AutocastOptimWrapper)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        'auto_scale_lr.base_batch_size of the config')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs (nested keys with '
        'dots, lists as a=[1,2] or a=1,2, quote values with spaces)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (dist_train.sh: pytorch, slurm_train.sh: slurm)')
    # torch.distributed.launch passes --local-rank / --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def setup_amp(cfg: Config) -> None:
    """Switch the config's optimizer wrapper to mixed precision.

    On CUDA: mmengine's ``AmpOptimWrapper`` with dynamic loss scaling. With
    no CUDA device, ``AmpOptimWrapper`` cannot be built (it needs a GPU's
    ``GradScaler``) and CPU autocast supports only bfloat16, so this falls
    back, with a warning, to ``BF16AutocastOptimWrapper`` (bfloat16
    autocast, no loss scaling: bfloat16 has float32's exponent range).
    """
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        raise ValueError('--amp: the config has no optim_wrapper to switch '
                         'to mixed precision')
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type in _AMP_WRAPPERS:
        print_log(
            f'--amp: the config already uses {wrapper_type}',
            logger='current',
            level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(
            f'--amp switches OptimWrapper to AmpOptimWrapper, but the config '
            f'uses {wrapper_type}; set its mixed precision in the config')
    if _cuda_available():
        optim_wrapper['type'] = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        print_log(
            '--amp: no CUDA device; AmpOptimWrapper (float16 + GradScaler) '
            'needs one. Falling back to bfloat16 autocast on CPU '
            '(BF16AutocastOptimWrapper, no loss scaling)',
            logger='current',
            level=logging.WARNING)
        optim_wrapper['type'] = 'BF16AutocastOptimWrapper'
        optim_wrapper['dtype'] = 'bfloat16'


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        setup_amp(cfg)
    if args.auto_scale_lr:
        auto = cfg.get('auto_scale_lr')
        if not auto or 'base_batch_size' not in auto:
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr = dict('
                'base_batch_size=N) in the config: the total batch size '
                '(GPUs x samples per GPU) its learning rate was tuned for')
        auto['enable'] = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(
                f'--resume: checkpoint {args.resume} not found (give an '
                'existing .pth, or --resume alone for the latest checkpoint '
                'in the work dir)')
        from mmhand2p.engine.checkpoint import (checkpoint_is_complete,
                                                latest_complete_checkpoint)
        if not checkpoint_is_complete(args.resume):
            newest = latest_complete_checkpoint([osp.dirname(args.resume)])
            hint = (f'resume from {newest}, the newest complete one in its '
                    'folder' if newest else 'no complete checkpoint is left '
                    'in its folder')
            raise ValueError(
                f'--resume: {args.resume} is truncated or not a checkpoint '
                f'(a save cut short by a kill?); {hint}')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> None:
    # packed samples carry many small tensors: one shared-memory file per
    # tensor (torch's default) makes worker loading slower than no worker
    # at all (docs/datasets.md); share through the file system instead
    torch.multiprocessing.set_sharing_strategy('file_system')
    args = parse_args(argv)

    # registers every mmhand2p module; the config's default_scope picks the
    # registries (mmhand2p, or another OpenMMLab project's)
    from mmhand2p.utils import register_all_modules
    register_all_modules(init_default_scope=False)

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg = merge_args(cfg, args)
    # torchrun without CUDA: gloo, CPU processes (else mmengine's init_dist
    # calls torch.cuda.set_device); refuses slurm / mpi with a message
    from mmhand2p.utils.dist_env import (setup_cpu_distributed,
                                         teardown_cpu_distributed)
    owned = setup_cpu_distributed(cfg)
    succeeded = False
    try:
        from mmengine.registry import RUNNERS
        from mmengine.runner import Runner
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        runner.train()
        succeeded = True
    finally:
        teardown_cpu_distributed(owned, succeeded)


if __name__ == '__main__':
    main()
