# Copyright (c) mmhand2p contributors. All rights reserved.
"""FiniteLossHook: a NaN loss or gradient stops the run (or skips the step)
before the optimizer changes the weights, naming the iteration, the loss
terms and the samples (issue 12, item 3)."""
import os.path as osp

import pytest
import torch
from _finite_toy import NAN  # noqa: F401 (registers the toy model, data)
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement, InstanceData

from mmhand2p.engine import FiniteLossHook, NonFiniteLossError
from mmhand2p.engine.hooks.finite_check import batch_sample_ids

_RUNS = [0]


def _cfg(work_dir, max_iters, nan_at=(), poison_at=(), **finite):
    _RUNS[0] += 1
    return dict(
        model=dict(type='_FiniteToy'),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dict(
                type='_FiniteToyData', nan_at=nan_at, poison_at=poison_at),
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(
                type='SafeCheckpointHook', by_epoch=False, interval=1),
            logger=dict(type='LoggerHook', interval=1),
            finite_check=dict(type='FiniteLossHook', **finite)),
        log_processor=dict(by_epoch=False),
        default_scope='mmhand2p',
        experiment_name=f'finite_{_RUNS[0]}',
        randomness=dict(seed=0),
        custom_imports=dict(imports=['mmhand2p.engine']),
    )


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _last(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _all_finite(state_dict):
    return all(bool(torch.isfinite(v).all()) for v in state_dict.values())


def _log(runner):
    with open(MMLogger.get_current_instance().log_file) as f:
        return f.read()


def test_nan_sample_stops_the_run_naming_iteration_term_and_sample(tmp_path):
    # batches (no shuffle, 2 per batch): iteration 3 holds samples 4 and 5
    runner = Runner.from_cfg(_cfg(tmp_path, 6, nan_at=(5, )))
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    msg = str(e.value)
    assert 'non-finite loss' in msg and 'iteration 3;' in msg
    assert '(epoch' not in msg  # an iteration-based loop
    assert 'loss_fit=nan' in msg and 'loss_reg' not in msg
    # the sample whose annotation is NaN is named, with the field
    assert 'toy_005.png (target)' in msg and 'toy_004.png' not in msg
    assert 'nonfinite=skip' in msg  # says how to skip instead
    assert 'toy_005.png' in _log(runner)
    # stopped before the step: the weights and last checkpoint are finite
    assert osp.basename(_last(tmp_path)) == 'iter_2.pth'
    assert not osp.exists(tmp_path / 'iter_3.pth')
    assert _all_finite(_load(_last(tmp_path))['state_dict'])
    assert _all_finite(runner.model.state_dict())
    assert runner.iter == 2


def test_skip_mode_trains_through_and_leaves_the_step_out(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, 6, nan_at=(5, ), nonfinite='skip'))
    runner.train()
    assert runner.iter == 6
    states = {i: _load(tmp_path / f'iter_{i}.pth') for i in range(1, 7)}
    for i, ckpt in states.items():
        assert _all_finite(ckpt['state_dict']), i
    # iteration 3 was skipped: weights and momentum as after iteration 2
    for k, v in states[2]['state_dict'].items():
        assert torch.equal(states[3]['state_dict'][k], v), k
    for k, v in states[2]['optimizer']['state'].items():
        assert torch.equal(
            states[3]['optimizer']['state'][k]['momentum_buffer'],
            v['momentum_buffer'])
    # the other iterations did step
    for i in (2, 4):
        assert not torch.equal(states[i]['state_dict']['fc.weight'],
                               states[i - 1]['state_dict']['fc.weight'])
    assert runner.message_hub.get_info('nonfinite_skips') == 1
    assert states[6]['message_hub']['runtime_info']['nonfinite_skips'] == 1
    log = _log(runner)
    assert 'Optimizer step skipped (1 skipped in this run, 1 in a row)' in log
    assert 'toy_005.png (target)' in log


def test_skip_mode_gives_up_after_too_many_skips_in_a_row(tmp_path):
    runner = Runner.from_cfg(
        _cfg(
            tmp_path,
            8,
            nan_at=range(2, 8),
            nonfinite='skip',
            max_consecutive_skips=2))
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    # iterations 2, 3 skipped; the third in a row (iteration 4) stops
    assert '3 optimizer steps in a row skipped' in str(e.value)
    assert 'iteration 4' in str(e.value)
    assert runner.message_hub.get_info('nonfinite_skips') == 3
    assert _all_finite(runner.model.state_dict())


def test_finite_loss_with_nan_gradient_is_caught(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, 6, poison_at=(4, )))
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    msg = str(e.value)
    assert 'non-finite gradients of 1 parameter(s): fc.bias' in msg
    assert 'iteration 3' in msg
    # no sample holds a NaN, so the whole batch is listed
    assert 'batch samples: toy_004.png, toy_005.png' in msg
    assert _all_finite(runner.model.state_dict())
    assert osp.basename(_last(tmp_path)) == 'iter_2.pth'


def test_hook_removes_its_wrappers_after_training(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, 1))
    seen = []
    runner.model.train_step = lambda data, optim_wrapper: seen.append(
        sorted(set(vars(optim_wrapper)) & {'update_params', 'step'}))
    runner.train()
    assert seen == [['step', 'update_params']]  # wrapped while training
    assert 'update_params' not in vars(runner.optim_wrapper)
    assert 'step' not in vars(runner.optim_wrapper)
    assert 'parse_losses' not in vars(runner.model)


def test_enable_false_turns_the_check_off(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, 3, nan_at=(5, ), enable=False))
    # no FiniteLossHook check: the NaN reaches the weights, and the
    # checkpoint hook refuses to save them
    from mmhand2p.engine import NonFiniteCheckpointError
    with pytest.raises(NonFiniteCheckpointError, match='fc.weight'):
        runner.train()
    assert osp.basename(_last(tmp_path)) == 'iter_2.pth'


def test_invalid_mode_is_named():
    with pytest.raises(ValueError, match="'raise', 'skip'"):
        FiniteLossHook(nonfinite='ignore')


def test_batch_sample_ids():
    gt = InstanceData(transl=torch.tensor([[0.0, NAN, 0.6]]))
    samples = [
        BaseDataElement(metainfo=dict(img_path='a.png')),
        BaseDataElement(metainfo=dict(img_id=7), gt_hands=gt),
        BaseDataElement(metainfo=dict(sample_idx=3)),
        BaseDataElement(),
    ]
    inputs = [
        torch.zeros(3),
        torch.zeros(3),
        torch.full((3, ), NAN),
        torch.zeros(3)
    ]
    ids = batch_sample_ids(dict(inputs=inputs, data_samples=samples))
    assert ids['all'] == ['a.png', '7', '3', '#3 of the batch']
    assert ids['nonfinite'] == ['7 (gt_hands.transl)', '3 (inputs)']
    assert batch_sample_ids(None) == dict(all=[], nonfinite=[])


def test_epoch_based_message_names_the_epoch(tmp_path):
    cfg = _cfg(tmp_path, 0, nan_at=(5, ))
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=2)
    cfg['default_hooks']['checkpoint'] = dict(type='SafeCheckpointHook')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteLossError, match=r'iteration 3 \(epoch 1\)'):
        runner.train()
