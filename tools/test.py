#!/usr/bin/env python
# Copyright (c) mmhand2p contributors. All rights reserved.
"""Evaluate a checkpoint on the config's test set with mmengine's Runner.

Examples::

    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    python tools/test.py CONFIG CHECKPOINT --show-dir vis_test
    bash tools/dist_test.sh CONFIG CHECKPOINT 8           # 8 GPUs (torchrun)

See ``docs/user_guides/train_and_test.md``.
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) an mmhand2p model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='where the evaluation log goes (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--out',
        help='dump the predictions (data samples as dicts of tensors) to '
        'this .pkl file; it is written only when the whole run succeeds')
    parser.add_argument(
        '--show-dir',
        help='draw the first sample of every --interval-th test batch '
        '(mesh overlay, skeletons, side view) into this folder')
    parser.add_argument(
        '--show',
        action='store_true',
        help='show the drawn samples in a window')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='with --show-dir / --show: draw every n-th batch (default 1)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='with --show: seconds each picture stays (0: until a key)')
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
        help='job launcher (dist_test.sh: pytorch, slurm_test.sh: slurm)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must be a .pkl or .pickle file, got {args.out}')
    return args


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    """Turn on ``TwoHandVisualizationHook`` for ``--show-dir`` / ``--show``.

    Uses ``default_hooks.visualization`` when the config has one (keeping its
    settings), else adds it; makes sure a visualizer that draws two-hand
    samples is configured.
    """
    default_hooks = cfg.get('default_hooks') or {}
    hook = dict(
        default_hooks.get('visualization')
        or dict(type='TwoHandVisualizationHook'))
    hook['enable'] = True
    hook['interval'] = args.interval
    if args.show_dir is not None:
        # relative to the current directory, like every other path argument
        hook['out_dir'] = osp.abspath(args.show_dir)
    elif 'out_dir' not in hook:
        hook['out_dir'] = None
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    default_hooks['visualization'] = hook
    cfg.default_hooks = default_hooks
    if cfg.get('visualizer') is None:
        cfg.visualizer = dict(
            type='TwoHandLocalVisualizer',
            vis_backends=[dict(type='LocalVisBackend')],
            name='visualizer')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} not found')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir is not None or args.show:
        enable_visualization(cfg, args)
    return cfg


def _temp_out_path(out: str) -> str:
    """A sibling of ``out`` (same file system: ``os.replace`` is atomic)
    whose name still ends in ``.pkl`` as ``DumpResults`` requires."""
    out = osp.abspath(out)
    return osp.join(
        osp.dirname(out), f'.{osp.basename(out)}.{os.getpid()}.tmp.pkl')


def main(argv=None) -> None:
    # packed samples carry many small tensors: one shared-memory file per
    # tensor (torch's default) makes worker loading slower than no worker
    # at all (docs/datasets.md); share through the file system instead
    torch.multiprocessing.set_sharing_strategy('file_system')
    args = parse_args(argv)

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
        _run(cfg, args)
        succeeded = True
    finally:
        teardown_cpu_distributed(owned, succeeded)


def _run(cfg, args) -> None:
    """Build the Runner and test; ``--out`` replaced only on success."""
    from mmengine.dist import is_main_process
    from mmengine.evaluator import DumpResults
    from mmengine.logging import print_log
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    tmp_out = None
    if args.out is not None:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        tmp_out = _temp_out_path(args.out)
        # the predictions go to a temporary file that replaces --out only
        # once the whole test run has succeeded
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=tmp_out))
    try:
        runner.test()
        if tmp_out is not None and is_main_process():
            if not osp.isfile(tmp_out):
                raise RuntimeError(
                    f'the predictions were not dumped to {tmp_out}; '
                    f'{args.out} was not written')
            os.replace(tmp_out, args.out)
            print_log(f'predictions written to {args.out}', logger='current')
    finally:
        if tmp_out is not None and osp.exists(tmp_out):
            os.remove(tmp_out)


if __name__ == '__main__':
    main()
