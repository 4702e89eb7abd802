# Copyright (c) mmhand2p contributors. All rights reserved.
"""tools/dist_train.sh and dist_test.sh with 2 processes on a machine
without CUDA (gloo), on the toy model of ``_toy_components.py``."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmhand2p.utils.dist_env import setup_cpu_distributed

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
TOOLS = osp.join(REPO, 'tools')

# records, per rank, what the process saw: the process group, the model
# wrapper, the samples of its iterations and the parameters after training
PROBE = '''\
import json
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.hooks import Hook

from mmhand2p.registry import HOOKS


@HOOKS.register_module(force=True)
class DistProbeHook(Hook):

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.samples = dict(train=[], test=[])
        self.initial = None

    def before_train(self, runner):
        self.initial = [
            p.detach().flatten().tolist() for p in runner.model.parameters()
        ]

    def _seen(self, mode, data_batch):
        self.samples[mode] += [
            s.metainfo['img_path'] for s in data_batch['data_samples']
        ]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self._seen('train', data_batch)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        self._seen('test', data_batch)

    def _dump(self, runner, mode):
        params = torch.cat(
            [p.detach().flatten() for p in runner.model.parameters()])
        rank = dist.get_rank()
        with open(osp.join(self.out_dir, f'{mode}_rank{rank}.json'),
                  'w') as f:
            json.dump(
                dict(
                    world_size=dist.get_world_size(),
                    backend=dist.get_backend(),
                    wrapper=type(runner.model).__name__,
                    device=str(params.device),
                    samples=self.samples[mode],
                    initial=self.initial,
                    params=params.tolist()), f)

    def after_train(self, runner):
        self._dump(runner, 'train')

    def after_test(self, runner):
        self._dump(runner, 'test')
'''

CONFIG = '''\
_base_ = [{base!r}]  # env_cfg.dist_cfg.backend = 'nccl'
custom_imports = dict(
    imports=['_toy_components', '_dist_probe', 'mmhand2p.engine'],
    allow_failed_imports=False)
model = dict(type='ToyTwoHandModel')
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyTwoHandDataset', num_samples=8))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyTwoHandDataset', num_samples=4))
test_evaluator = dict(type='ToyTranslError')
test_cfg = dict()
train_cfg = dict(by_epoch=False, max_iters=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.5))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=2))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='DistProbeHook', out_dir={out!r})]
randomness = dict(seed=0)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(script, args, cwd):
    # no CUDA device visible, as on a CPU-only machine
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()),
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (HERE, str(cwd), env.get('PYTHONPATH')) if p)
    res = subprocess.run(['bash', osp.join(TOOLS, script), *map(str, args)],
                         cwd=str(cwd), env=env, capture_output=True,
                         text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f'{script} {args} failed:\n{out[-5000:]}'
    return out


def _ranks(tmp_path, mode):
    return [
        json.load(open(tmp_path / f'{mode}_rank{r}.json')) for r in (0, 1)
    ]


def test_dist_train_and_test_run_two_cpu_processes(tmp_path):
    (tmp_path / '_dist_probe.py').write_text(PROBE)
    cfg = tmp_path / 'toy_dist.py'
    cfg.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs', '_base_', 'default_runtime.py'),
            out=str(tmp_path)))
    work_dir = tmp_path / 'work'
    out = _launch('dist_train.sh', [cfg, 2, '--work-dir', work_dir],
                  tmp_path)
    assert "backend 'nccl' -> 'gloo'" in out
    ranks = _ranks(tmp_path, 'train')
    for r in ranks:
        assert r['world_size'] == 2 and r['backend'] == 'gloo'
        assert r['wrapper'] == 'MMDistributedDataParallel'
        assert r['device'] == 'cpu'
        assert len(r['samples']) == 2 * 2  # 2 iterations of 2 samples
    # each rank trained on its own half of the data ...
    seen = [set(r['samples']) for r in ranks]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {f'toy_{i:03d}.png' for i in range(8)}
    # ... and DDP kept the two models equal while they moved
    p0, p1 = (torch.tensor(r['params']) for r in ranks)
    assert torch.equal(p0, p1)
    initial = torch.cat([torch.tensor(p) for p in ranks[0]['initial']])
    # backbone conv and head (4 tensors) moved; the frozen teachers did not
    trainable = sum(len(p) for p in ranks[0]['initial'][:4])
    assert (p0[:trainable] - initial[:trainable]).abs().max() > 1e-4
    assert torch.equal(p0[trainable:], initial[trainable:])
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    saved = torch.cat([v.flatten() for v in state['state_dict'].values()])
    assert torch.equal(saved, p0)

    out = _launch('dist_test.sh',
                  [cfg, ckpt, 2, '--work-dir', tmp_path / 'test_work'],
                  tmp_path)
    assert 'toy/transl_err' in out
    ranks = _ranks(tmp_path, 'test')
    seen = [set(r['samples']) for r in ranks]
    assert [len(s) for s in seen] == [2, 2] and not seen[0] & seen[1]
    assert all(r['backend'] == 'gloo' for r in ranks)
    # both ranks loaded the trained checkpoint
    for r in ranks:
        assert torch.allclose(torch.tensor(r['params']), p0)


@pytest.mark.parametrize('launcher', ['slurm', 'mpi'])
def test_gpu_only_launchers_refuse_without_cuda(monkeypatch, launcher):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher=launcher, env_cfg=dict(dist_cfg=dict(
        backend='nccl'))))
    with pytest.raises(RuntimeError,
                       match=rf'--launcher {launcher} needs CUDA.*'
                       r'dist_train\.sh CONFIG N'):
        setup_cpu_distributed(cfg)


def test_single_process_or_cuda_is_left_alone(monkeypatch):
    cfg = Config(dict(launcher='none', env_cfg=dict(dist_cfg=dict(
        backend='nccl'))))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert setup_cpu_distributed(cfg) is False
    cfg.launcher = 'pytorch'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert setup_cpu_distributed(cfg) is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg
