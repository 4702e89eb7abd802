# Copyright (c) mmhand2p contributors. All rights reserved.
"""Distributed runs (``tools/dist_train.sh``, ``dist_test.sh``) on a
machine without CUDA: CPU processes talking through gloo."""
import datetime
import logging
import os

import torch
from mmengine.logging import print_log

__all__ = ['setup_cpu_distributed', 'teardown_cpu_distributed']

#: model wrappers that are ``DistributedDataParallel`` (mmengine adds
#: ``device_ids=[LOCAL_RANK]`` to these, which DDP refuses for CPU modules)
_DDP_WRAPPERS = ('MMDistributedDataParallel', 'DistributedDataParallel')


def setup_cpu_distributed(cfg) -> bool:
    """Make a config launched with ``cfg.launcher = 'pytorch'`` (torchrun)
    run without CUDA; a no-op with CUDA or ``launcher='none'``.

    mmengine's ``init_dist`` binds every process to a GPU with
    ``torch.cuda.set_device`` (on a CPU build of torch: "module 'torch._C'
    has no attribute '_cuda_setDevice'"), its default backend in the
    configs is ``nccl`` (GPU only), and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``, which DDP refuses for a CPU model. Here,
    without CUDA:

    * ``env_cfg.dist_cfg.backend`` becomes ``'gloo'`` (logged by rank 0
      when it was something else, e.g. the default runtime's ``'nccl'``);
    * the process group is initialised here from torchrun's environment
      (``env://``, with ``dist_cfg``'s other arguments, ``timeout`` in
      seconds), so the Runner finds it ready and skips ``init_dist``;
    * the DDP wrapper is configured with ``device_ids=None``.

    Args:
        cfg (Config): the run's config, ``launcher`` already set.

    Returns:
        bool: True when the run was set up for CPU processes.

    Raises:
        RuntimeError: ``launcher`` is ``'slurm'`` or ``'mpi'`` without
            CUDA (mmengine's set-up for these binds processes to GPUs and
            ``slurm_train.sh`` asks Slurm for GPUs).
    """
    launcher = cfg.get('launcher', 'none') or 'none'
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA devices and this machine has '
            'none (torch.cuda.is_available() is False). For CPU processes '
            'launch with torchrun: bash tools/dist_train.sh CONFIG N (or '
            'dist_test.sh CONFIG CHECKPOINT N), which uses gloo; or run '
            'one process with python tools/train.py CONFIG')
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    backend = dist_cfg.get('backend', 'nccl')
    rank = int(os.environ.get('RANK', '0'))
    if backend != 'gloo':
        if rank == 0:
            print_log(
                f'no CUDA device: distributed backend {backend!r} -> '
                "'gloo' (env_cfg.dist_cfg.backend), one CPU process per "
                'rank', logger='current', level=logging.WARNING)
        dist_cfg.backend = 'gloo'
    if not torch.distributed.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        if kwargs.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        torch.distributed.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif str(wrapper.get('type', 'MMDistributedDataParallel')).split(
            '.')[-1] in _DDP_WRAPPERS:
        wrapper.setdefault('device_ids', None)
    return True


def teardown_cpu_distributed(owned: bool, succeeded: bool = True) -> None:
    """End a process group that :func:`setup_cpu_distributed` started
    (``owned``): after a successful run every rank waits for the others,
    then the group is destroyed before the interpreter exits. After a
    failure (``succeeded=False``) the group is destroyed without waiting: the
    other ranks may be blocked in a collective that this rank will never
    join, and torchrun stops them.

    Without it, a rank that leaves while gloo's threads of another rank are
    still talking to it can die at exit with "terminate called without an
    active exception" (SIGABRT) although its work is done, and torchrun
    then reports the run as failed.
    """
    if not owned or not torch.distributed.is_initialized():
        return
    try:
        if succeeded:
            torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
