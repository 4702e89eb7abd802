# Copyright (c) mmhand2p contributors. All rights reserved.
"""SafeCheckpointHook: atomic saves, old checkpoints removed only after the
new one is complete, no checkpoint of non-finite weights, resume past a
truncated checkpoint (issue 12, items 1 and 3).

The kill-and-resume run through ``tools/train.py`` is
``tests/test_tools/test_train_kill_resume.py``.
"""
import glob
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn
from torch.utils.data import Dataset

from mmhand2p.engine import (NonFiniteCheckpointError, SafeCheckpointHook,
                             checkpoint_is_complete,
                             latest_complete_checkpoint)
from mmhand2p.engine.hooks.checkpoint_hook import (AtomicLocalBackend,
                                                   nonfinite_tensors)
from mmhand2p.registry import DATASETS, MODELS
from mmhand2p.utils import fileio
from mmhand2p.utils.fileio import file_sha256

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@MODELS.register_module(force=True)
class _SafeCkptToy(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(torch.stack(inputs))
        if mode == 'loss':
            y = torch.stack([s.target for s in data_samples])
            return dict(loss=((out - y)**2).mean())
        return out


@DATASETS.register_module(force=True)
class _SafeCkptData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([i / 8.0, 1.0 - i / 8.0])
        return dict(
            inputs=x,
            data_samples=BaseDataElement(
                metainfo=dict(img_path=f'toy_{i:03d}.png'),
                target=x.sum(0, keepdim=True) * 3 - 1))


_RUNS = [0]


def _cfg(work_dir, max_iters, resume=False, **ckpt):
    _RUNS[0] += 1
    checkpoint = dict(
        type='SafeCheckpointHook',
        by_epoch=False,
        interval=1,
        max_keep_ckpts=-1)
    checkpoint.update(ckpt)
    return dict(
        model=dict(type='_SafeCkptToy'),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dict(type='_SafeCkptData'),
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=checkpoint, logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        default_scope='mmhand2p',
        # runners made within one second would otherwise share mmengine's
        # (timestamp-named) message hub
        experiment_name=f'safe_ckpt_{_RUNS[0]}',
        randomness=dict(seed=0),
        resume=resume,
        custom_imports=dict(imports=['mmhand2p.engine']),
    )


def _hook(runner):
    hooks = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
    assert len(hooks) == 1
    return hooks[0]


def _pth(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))


def _last(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return osp.basename(f.read().strip())


def _truncate(path):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def test_every_config_uses_the_safe_hooks():
    """Every config (mmdet-scoped rtmdet_hand and teachers included)
    resolves to SafeCheckpointHook and FiniteLossHook."""
    paths = sorted(
        p for p in glob.glob(
            osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
        if '_base_' not in osp.relpath(p, REPO).split(os.sep))
    assert len(paths) > 20
    for path in paths:
        cfg = Config.fromfile(path)
        hooks = cfg.get('default_hooks') or {}
        name = osp.relpath(path, REPO)
        assert hooks.get('checkpoint', {}).get('type', '').split('.')[-1] \
            == 'SafeCheckpointHook', name
        assert hooks.get('finite_check', {}).get('type', '').split('.')[-1] \
            == 'FiniteLossHook', name
        assert hooks['finite_check'].get('nonfinite', 'raise') == 'raise'
        if cfg.get('default_scope') != 'mmhand2p':
            # another project's scope: the type must name mmhand2p's
            assert hooks['checkpoint']['type'].startswith('mmhand2p.'), name
            assert hooks['finite_check']['type'].startswith('mmhand2p.'), name


def test_mmdet_scoped_config_builds_the_safe_hook():
    from mmengine.registry import HOOKS, DefaultScope

    from mmhand2p.engine import FiniteLossHook
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'rtmdet_hand',
                 'rtmdet_tiny_1xb16-cpu_synthetic-hands-256.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        hook = HOOKS.build(cfg.default_hooks.checkpoint)
        finite = HOOKS.build(cfg.default_hooks.finite_check)
    assert type(hook) is SafeCheckpointHook and hook.max_keep_ckpts == 2
    assert type(finite) is FiniteLossHook


def test_old_checkpoint_removed_only_after_new_one_complete(tmp_path):
    """max_keep_ckpts=1: while iter_N.pth is written, iter_{N-1}.pth and
    the last_checkpoint naming it are still there."""
    runner = Runner.from_cfg(_cfg(tmp_path, 3, max_keep_ckpts=1))
    seen = []
    save = runner.save_checkpoint

    def recording_save(out_dir, filename, *args, **kwargs):
        last = _last(tmp_path) if osp.exists(
            osp.join(tmp_path, 'last_checkpoint')) else None
        seen.append((filename, _pth(tmp_path), last))
        save(out_dir, filename, *args, **kwargs)

    runner.save_checkpoint = recording_save
    runner.train()
    assert seen == [
        ('iter_1.pth', [], None),
        ('iter_2.pth', ['iter_1.pth'], 'iter_1.pth'),
        ('iter_3.pth', ['iter_2.pth'], 'iter_2.pth'),
    ]
    assert _pth(tmp_path) == ['iter_3.pth'] and _last(tmp_path) == 'iter_3.pth'
    # the checkpoint's message hub lists itself, so a resumed run removes
    # it in turn
    ckpt = torch.load(
        tmp_path / 'iter_3.pth', map_location='cpu', weights_only=True)
    assert ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] == [3]


def test_nonfinite_weights_are_not_saved(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, 2))
    runner.train()
    assert _pth(tmp_path) == ['iter_1.pth', 'iter_2.pth']
    with torch.no_grad():
        runner.model.fc.weight[0, 1] = float('nan')
    with pytest.raises(NonFiniteCheckpointError) as e:
        _hook(runner)._save_checkpoint(runner)
    assert 'fc.weight' in str(e.value) and 'iteration 3' in str(e.value)
    assert 'iter_2.pth' in str(e.value)  # the last good one
    assert _pth(tmp_path) == ['iter_1.pth', 'iter_2.pth']
    assert _last(tmp_path) == 'iter_2.pth'
    assert not glob.glob(osp.join(tmp_path, '.*.tmp'))


def test_nonfinite_optimizer_state_is_not_saved(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, 2))
    runner.train()
    state = runner.optim_wrapper.optimizer.state
    buf = state[runner.model.fc.bias]['momentum_buffer']
    buf.fill_(float('inf'))
    with pytest.raises(NonFiniteCheckpointError) as e:
        _hook(runner)._save_checkpoint(runner)
    assert re.search(r'optimizer\.state\.\d+\.momentum_buffer', str(e.value))
    assert _pth(tmp_path) == ['iter_1.pth', 'iter_2.pth']


def test_nonfinite_tensors_names():
    tree = dict(
        a=torch.ones(2),
        b=dict(c=torch.tensor([1.0, float('nan')]), n=torch.arange(3)),
        d=[torch.zeros(1), torch.tensor([float('-inf')])])
    assert nonfinite_tensors(tree) == ['b.c', 'd[1]']


def test_previous_best_removed_after_new_best_saved(tmp_path):
    runner = Runner.from_cfg(
        _cfg(tmp_path, 2, save_best='acc', rule='greater'))
    runner.train()
    hook = _hook(runner)
    seen = []
    save = runner.save_checkpoint

    def recording_save(out_dir, filename, *args, **kwargs):
        seen.append((filename, [n for n in _pth(tmp_path) if 'best' in n]))
        save(out_dir, filename, *args, **kwargs)

    runner.save_checkpoint = recording_save
    hook.after_val_epoch(runner, dict(acc=0.5))
    runner.train_loop._iter = 3
    hook.after_val_epoch(runner, dict(acc=0.4))  # not better: no save
    runner.train_loop._iter = 4
    hook.after_val_epoch(runner, dict(acc=0.9))
    best = [s for s in seen if s[0].startswith('best')]
    assert best == [('best_acc_iter_2.pth', []),
                    ('best_acc_iter_4.pth', ['best_acc_iter_2.pth'])]
    assert [n for n in _pth(tmp_path)
            if 'best' in n] == ['best_acc_iter_4.pth']
    assert runner.message_hub.get_info('best_ckpt').endswith(
        'best_acc_iter_4.pth')
    assert runner.message_hub.get_info('best_score') == 0.9


@pytest.mark.parametrize('damage', ['truncated', 'missing'])
def test_auto_resume_falls_back_to_newest_complete(tmp_path, damage):
    Runner.from_cfg(_cfg(tmp_path, 4, interval=2)).train()
    assert _pth(tmp_path) == ['iter_2.pth', 'iter_4.pth']
    assert _last(tmp_path) == 'iter_4.pth'
    bad = osp.join(tmp_path, 'iter_4.pth')
    assert checkpoint_is_complete(bad)
    if damage == 'truncated':  # what an in-place write leaves when killed
        _truncate(bad)
        assert not checkpoint_is_complete(bad)
    else:  # what removing before saving leaves
        os.remove(bad)
    assert latest_complete_checkpoint([str(tmp_path)]).endswith('iter_2.pth')

    starts = []
    runner = Runner.from_cfg(_cfg(tmp_path, 6, resume=True, interval=2))
    train_step = runner.model.train_step

    def recording_step(data, optim_wrapper):
        starts.append(runner.iter)
        return train_step(data, optim_wrapper)

    runner.model.train_step = recording_step
    runner.train()
    assert starts == [2, 3, 4, 5]  # resumed after iteration 2
    assert _last(tmp_path) == 'iter_6.pth'
    assert checkpoint_is_complete(osp.join(tmp_path, 'iter_4.pth'))


def test_auto_resume_with_nothing_complete_says_so(tmp_path):
    Runner.from_cfg(_cfg(tmp_path, 2, interval=2)).train()
    _truncate(osp.join(tmp_path, 'iter_2.pth'))
    runner = Runner.from_cfg(_cfg(tmp_path, 4, resume=True, interval=2))
    with pytest.raises(FileNotFoundError, match='no complete checkpoint'):
        runner.train()


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    stale = [
        tmp_path / '.iter_4.pth.k2j3h4.tmp',
        tmp_path / '.last_checkpoint.a1b2c3.tmp',
        tmp_path / '.best_acc_iter_2.pth.zz.tmp'
    ]
    other = [tmp_path / '.notes.txt.q1.tmp', tmp_path / 'iter_x.tmp']
    for p in stale + other:
        p.write_bytes(b'partial')
    Runner.from_cfg(_cfg(tmp_path, 1)).train()
    for p in stale:
        assert not p.exists(), p
    for p in other:
        assert p.exists(), p


def test_published_model_is_written_atomically_and_named_by_its_bytes(
        tmp_path):
    Runner.from_cfg(_cfg(tmp_path, 2, published_keys=['meta',
                                                      'state_dict'])).train()
    published = sorted(glob.glob(osp.join(tmp_path, 'iter_2-*.pth')))
    assert len(published) == 1
    sha8 = osp.basename(published[0])[len('iter_2-'):-len('.pth')]
    assert file_sha256(published[0])[:8] == sha8
    ckpt = torch.load(published[0], map_location='cpu', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert not glob.glob(osp.join(tmp_path, '.*.tmp'))


def test_atomic_backend_keeps_the_old_file_when_a_write_fails(
        tmp_path, monkeypatch):
    path = tmp_path / 'iter_1.pth'
    path.write_bytes(b'old complete checkpoint')

    def failing_fsync(fd):
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(fileio.os, 'fsync', failing_fsync)
    with pytest.raises(OSError, match='disk full'):
        AtomicLocalBackend().put(b'new bytes' * 1000, str(path))
    assert path.read_bytes() == b'old complete checkpoint'
    assert os.listdir(tmp_path) == ['iter_1.pth']
    monkeypatch.undo()
    AtomicLocalBackend().put_text('new text', str(path))
    assert path.read_text() == 'new text'


def test_out_dir_saves_and_resume_fallback(tmp_path):
    work_dir, out_root = tmp_path / 'work', tmp_path / 'store'
    out_dir = out_root / 'work'  # out_dir + the work dir's last folder
    kw = dict(interval=2, max_keep_ckpts=2, out_dir=str(out_root))
    Runner.from_cfg(_cfg(work_dir, 4, **kw)).train()
    assert _pth(out_dir) == ['iter_2.pth', 'iter_4.pth']
    assert _pth(work_dir) == []
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip() == str(out_dir / 'iter_4.pth')
    _truncate(out_dir / 'iter_4.pth')
    runner = Runner.from_cfg(_cfg(work_dir, 6, resume=True, **kw))
    starts = []
    train_step = runner.model.train_step
    runner.model.train_step = lambda data, optim_wrapper: (starts.append(
        runner.iter), train_step(data, optim_wrapper))[1]
    runner.train()
    assert starts == [2, 3, 4, 5]  # from out_dir/iter_2.pth
    assert _pth(out_dir) == ['iter_4.pth', 'iter_6.pth']
    assert checkpoint_is_complete(str(out_dir / 'iter_4.pth'))
