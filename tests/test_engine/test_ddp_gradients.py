# Copyright (c) mmhand2p contributors. All rights reserved.
"""2-process CPU (gloo) DDP through torchrun == 1 process, combined batch."""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
CONFIG = osp.join(REPO, 'configs/a2p/synthetic/'
                  'a2p_res18_1xb16-cpu_synthetic-128x128.py')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_single_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    worker = osp.join(HERE, '_ddp_grad_worker.py')
    single = str(tmp_path / 'single.pth')
    res = subprocess.run(
        [sys.executable, worker, CONFIG, single, 'single'],
        env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp = str(tmp_path / 'ddp.pth')
    res = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--master_addr=127.0.0.1', f'--master_port={_free_port()}', worker,
         CONFIG, ddp, 'ddp'],
        env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    g1 = torch.load(single, weights_only=True)
    g2 = torch.load(ddp, weights_only=True)
    assert set(g1) == set(g2) and len(g1) > 50
    worst = max((g1[k] - g2[k]).abs().max().item() for k in g1)
    assert worst < 1e-5, worst
    # and the gradients are not trivially zero
    assert max(g.abs().max().item() for g in g1.values()) > 1e-3
