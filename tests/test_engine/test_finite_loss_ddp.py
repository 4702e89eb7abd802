# Copyright (c) mmhand2p contributors. All rights reserved.
"""FiniteLossHook under 2-process CPU (gloo) DDP through tools/train.py:
the ranks decide together.

Rank 0 alone sees a NaN loss term that does not reach the gradients
(``loss_aux`` of sample 6). Deciding alone, rank 0 would skip the step and
rank 1 would take it, and the two copies of the model would silently
differ from then on; the hook's all-reduced flag makes both skip.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))

CONFIG = """\
_base_ = [{base!r}]
custom_imports = dict(
    imports=['_finite_toy', 'mmhand2p.engine'], allow_failed_imports=False)
model = dict(type='_FiniteToy')
# DefaultSampler, no shuffle, 2 ranks x 2 samples: iteration 2 gives
# rank 0 samples 4, 6 and rank 1 samples 5, 7 (and iteration 4 again)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='_FiniteToyData', aux_nan_at=[6]))
train_cfg = dict(by_epoch=False, max_iters=4)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=1, max_keep_ckpts=-1),
    finite_check=dict(nonfinite='skip'))
custom_hooks = [dict(type='_DumpRankStateHook')]
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_ranks_skip_together(tmp_path):
    cfg = tmp_path / 'toy_ddp.py'
    cfg.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs', '_base_', 'default_runtime.py')))
    work_dir = tmp_path / 'work'
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            p for p in (HERE, REPO, os.environ.get('PYTHONPATH')) if p))
    res = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        '--master_addr=127.0.0.1', f'--master_port={_free_port()}',
        osp.join(REPO, 'tools', 'train.py'),
        str(cfg), '--launcher', 'pytorch', '--work-dir',
        str(work_dir)
    ],
                         cwd=str(tmp_path),
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert 'loss_aux=nan' in out and 'toy_006.png' in out, out[-6000:]

    # the two ranks hold the same weights at the end
    r0, r1 = _load(work_dir / 'rank0.pth'), _load(work_dir / 'rank1.pth')
    for k, v in r0.items():
        assert torch.equal(v, r1[k]), k
    # iterations 2 and 4 were skipped, 1 and 3 were not
    w = {
        i: _load(work_dir / f'iter_{i}.pth')['state_dict']['fc.weight']
        for i in range(1, 5)
    }
    assert torch.equal(w[2], w[1]) and torch.equal(w[4], w[3])
    assert not torch.equal(w[3], w[2])
    assert torch.equal(w[4], r0['fc.weight'])
    hub = _load(work_dir / 'iter_4.pth')['message_hub']
    assert hub['runtime_info']['nonfinite_skips'] == 2
