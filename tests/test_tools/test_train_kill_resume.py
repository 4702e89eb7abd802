# Copyright (c) mmhand2p contributors. All rights reserved.
"""A training run killed (SIGKILL) in the middle of a checkpoint save
resumes with ``tools/train.py --resume`` and ends exactly where an
uninterrupted run ends (issue 12, item 1).

``max_keep_ckpts=1`` as in the synthetic configs: mmengine's own
``CheckpointHook`` deletes ``iter_2.pth`` before writing ``iter_4.pth`` in
place, so this kill leaves a truncated ``iter_4.pth``, no ``iter_2.pth``
and a ``last_checkpoint`` naming the deleted file. ``_slow_save.py`` (this
folder) makes the ``iter_4.pth`` save stall after half of its bytes.
"""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import torch

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
TRAIN = osp.join(REPO, 'tools', 'train.py')

CONFIG = """\
_base_ = [{base!r}]
custom_imports = dict(
    imports=['_toy_components', '_slow_save', 'mmhand2p.engine'],
    allow_failed_imports=False)
model = dict(type='ToyTwoHandModel')
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ToyTwoHandDataset', num_samples=8))
train_cfg = dict(by_epoch=False, max_iters=6)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=2, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
"""


def _env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (HERE, REPO, env.get('PYTHONPATH')) if p)
    # one thread: the same arithmetic in every run
    env['OMP_NUM_THREADS'] = '1'
    env.update(extra)
    return env


def _train(args, cwd, env):
    return subprocess.Popen([sys.executable, TRAIN, *map(str, args)],
                            cwd=str(cwd),
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc, what):
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f'{what} failed:\n{out[-6000:]}'
    return out


def _losses(work_dir):
    """``{iteration: loss}`` of the newest run logged in ``work_dir``."""
    runs = sorted(
        glob.glob(osp.join(work_dir, '2*', 'vis_data', 'scalars.json')))
    assert runs, f'no scalars.json under {work_dir}'
    losses = {}
    with open(runs[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec:
                losses[rec['step']] = rec['loss']
    return losses


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_kill_during_save_then_resume_equals_uninterrupted(tmp_path):
    cfg = tmp_path / 'toy_iter.py'
    cfg.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs', '_base_', 'default_runtime.py')))
    ref_dir, run_dir = tmp_path / 'ref', tmp_path / 'run'
    marker = tmp_path / 'stalled'

    # the reference (uninterrupted) and the run to be killed, side by side
    ref = _train([cfg, '--work-dir', ref_dir], tmp_path, _env())
    run = _train([cfg, '--work-dir', run_dir], tmp_path,
                 _env(
                     MMHAND2P_SLOW_SAVE='iter_4.pth',
                     MMHAND2P_SLOW_SAVE_MARKER=str(marker)))
    deadline = time.time() + 240
    while not marker.exists():
        assert run.poll() is None, (
            'the run ended before its iter_4.pth save stalled:\n' +
            run.communicate()[0][-6000:])
        assert time.time() < deadline, 'the iter_4.pth save never started'
        time.sleep(0.05)
    # SIGKILL half-way through writing iter_4.pth
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    _finish(ref, 'the reference run')

    # what the kill left: the previous checkpoint, named by last_checkpoint,
    # and the half-written bytes only under a hidden temporary name
    names = sorted(os.listdir(run_dir))
    assert 'iter_2.pth' in names and 'iter_4.pth' not in names, names
    tmps = [n for n in names if n.startswith('.iter_4.pth.')]
    assert len(tmps) == 1 and tmps[0].endswith('.tmp'), names
    assert osp.getsize(run_dir / tmps[0]) > 0
    last = (run_dir / 'last_checkpoint').read_text().strip()
    assert osp.basename(last) == 'iter_2.pth'
    assert _state(last)['meta']['iter'] == 2

    # resume: from iter_2.pth, to the end
    out = _finish(
        _train([cfg, '--work-dir', run_dir, '--resume'], tmp_path, _env()),
        'the resumed run')
    assert 'resumed epoch: 0, iter: 2' in out, out[-3000:]
    names = sorted(os.listdir(run_dir))
    assert not [n for n in names if n.endswith('.tmp')], names
    # max_keep_ckpts=1: only the last checkpoint is left
    assert [n for n in names if n.endswith('.pth')] == ['iter_6.pth'], names
    assert (run_dir /
            'last_checkpoint').read_text().strip().endswith('iter_6.pth')

    # the same weights, optimizer state and losses as without the kill
    got, want = _state(run_dir / 'iter_6.pth'), _state(ref_dir / 'iter_6.pth')
    assert got['meta']['iter'] == want['meta']['iter'] == 6
    assert got['state_dict'].keys() == want['state_dict'].keys()
    for k, v in want['state_dict'].items():
        assert torch.equal(got['state_dict'][k], v), k
    for k, v in want['optimizer']['state'].items():
        assert torch.equal(got['optimizer']['state'][k]['momentum_buffer'],
                           v['momentum_buffer']), k
    ref_losses, run_losses = _losses(ref_dir), _losses(run_dir)
    assert sorted(ref_losses) == list(range(1, 7))
    assert sorted(run_losses) == [3, 4, 5, 6]
    assert run_losses == {i: ref_losses[i] for i in (3, 4, 5, 6)}
    assert len(set(ref_losses.values())) == 6  # the losses do change


def test_resume_from_a_truncated_checkpoint_names_a_complete_one(tmp_path):
    import importlib.util

    import pytest
    from mmengine.config import Config
    spec = importlib.util.spec_from_file_location('_train_tool', TRAIN)
    train_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_tool)

    good, bad = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, good)
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, bad)
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])  # a save cut short

    def merged(path):
        args = train_tool.parse_args(['toy.py', '--resume', str(path)])
        return train_tool.merge_args(
            Config(dict(work_dir=str(tmp_path))), args)

    with pytest.raises(ValueError) as e:
        merged(bad)
    assert 'iter_4.pth is truncated' in str(e.value)
    assert f'resume from {good}' in str(e.value)
    cfg = merged(good)
    assert cfg.resume and cfg.load_from == str(good)
