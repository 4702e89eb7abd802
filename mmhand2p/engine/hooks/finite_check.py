# Copyright (c) mmhand2p contributors. All rights reserved.
"""Stop (or skip) a training step whose loss or gradients are NaN / Inf.

Without a check, a NaN loss trains on: the optimizer writes NaN into the
weights, the logger prints ``loss: nan``, the checkpoint hook saves the NaN
weights as ``last_checkpoint``, and the run fails much later in an
unrelated place (``linalg.svd``). :class:`FiniteLossHook` checks every step
*before* the optimizer changes anything and says what went wrong where.

How it sees the step: mmengine's ``BaseModel.train_step`` (and DDP's) call
``model.parse_losses(losses)`` and then ``optim_wrapper.update_params(loss)``
(``backward``, ``step``, ``zero_grad``). At ``before_train`` the hook wraps
these three methods *of this run's objects* (instance attributes; the
classes are untouched, ``after_train`` removes the wrappers), so it works
with any model built on ``BaseModel`` (mmdet's RTMDet included) and any
optimizer wrapper (``OptimWrapper``, ``AmpOptimWrapper``,
``BF16AutocastOptimWrapper``) without a config change. Models cannot do
this themselves: the check must sit between the loss and the optimizer,
and models must not import the engine.

Per step:

* the total loss is checked before ``backward``; when it is not finite the
  error names the iteration, the non-finite loss terms (from the loss dict
  the model returned) and the samples of the batch (``img_path`` /
  ``sample_idx`` / ``img_id`` of the data samples' metainfo; samples whose
  inputs or annotations hold NaN / Inf are named first, with the field);
* with ``check_grads`` the gradients are checked before ``step`` (not under
  ``AmpOptimWrapper``, whose loss scaler skips steps with Inf gradients by
  design), so a finite loss with a NaN backward (``sqrt`` / ``svd`` at a
  degenerate input) is caught too, naming the parameters.

``nonfinite='raise'`` (the default) raises :class:`NonFiniteLossError`
before the optimizer step, so the weights, and every checkpoint, stay
finite. ``nonfinite='skip'`` logs a warning, runs ``backward`` (so that
distributed ranks stay in step), zeroes the gradients and leaves out the
optimizer step; the count of skipped steps is kept in the message hub
(``nonfinite_skips``, saved with checkpoints) and more than
``max_consecutive_skips`` skips in a row raise. With gradient accumulation a
skip drops the gradients accumulated so far in the window. In distributed
runs the ranks agree on the decision (one ``all_reduce`` of a flag per
step), so they raise or skip together.

Config (``configs/_base_/default_runtime.py`` turns it on for every
config)::

    default_hooks = dict(finite_check=dict(type='FiniteLossHook',
                                           nonfinite='raise'))
    # skip instead:  --cfg-options default_hooks.finite_check.nonfinite=skip
    # no check:      --cfg-options default_hooks.finite_check.enable=False

(``default_hooks.finite_check=None`` does not work: mmengine asserts that
default hooks other than its own six are not None.)
"""
import logging
import math
from typing import Any, Dict, List

import numpy as np
import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from mmhand2p.registry import HOOKS

__all__ = ['FiniteLossHook', 'NonFiniteLossError', 'batch_sample_ids']

#: metainfo keys that identify a sample, in order of preference
ID_KEYS = ('img_path', 'sample_idx', 'img_id', 'id')


class NonFiniteLossError(FloatingPointError):
    """A training step produced a NaN / Inf loss or gradient."""


def _nonfinite_fields(obj, prefix: str = '', depth: int = 0) -> List[str]:
    """Dotted names of the floating fields of a data sample (nested data
    elements, dicts, tensors, numpy arrays) that hold NaN / Inf."""
    if depth > 4:
        return []
    if torch.is_tensor(obj):
        if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
            return [prefix or '<tensor>']
        return []
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in 'fc' and not np.isfinite(obj).all():
            return [prefix or '<array>']
        return []
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [prefix or '<float>']
    items = None
    if isinstance(obj, dict):
        items = obj.items()
    elif hasattr(obj, 'all_items'):  # mmengine BaseDataElement
        items = obj.all_items()
    if items is None:
        return []
    bad = []
    for key, value in items:
        bad += _nonfinite_fields(value, f'{prefix}.{key}' if prefix else key,
                                 depth + 1)
    return bad


def _sample_id(sample, index: int) -> str:
    meta = getattr(sample, 'metainfo', None)
    if meta is None and isinstance(sample, dict):
        meta = sample
    for key in ID_KEYS:
        if meta is not None and key in meta:
            return str(meta[key])
    return f'#{index} of the batch'


def batch_sample_ids(data_batch: Any) -> Dict[str, List[str]]:
    """Identify the samples of a (collated, not yet preprocessed) batch.

    Returns:
        dict: ``all``: one id per sample (``img_path`` / ``sample_idx`` /
        ``img_id`` / ``id`` of its metainfo, the first present);
        ``nonfinite``: ``'<id> (<field>, ...)'`` for the samples whose
        input or data-sample fields hold NaN / Inf.
    """
    out = dict(all=[], nonfinite=[])
    if not isinstance(data_batch, dict):
        return out
    samples = data_batch.get('data_samples')
    inputs = data_batch.get('inputs')
    if not isinstance(samples, (list, tuple)):
        samples = None
    n = len(samples) if samples is not None else (len(inputs) if isinstance(
        inputs, (list, tuple)) or torch.is_tensor(inputs) else 0)
    for i in range(n):
        sample = samples[i] if samples is not None else None
        sid = _sample_id(sample, i)
        out['all'].append(sid)
        bad = []
        if isinstance(inputs, (list, tuple)) or torch.is_tensor(inputs):
            bad += _nonfinite_fields(inputs[i], 'inputs')
        if sample is not None:
            bad += _nonfinite_fields(sample)
        if bad:
            out['nonfinite'].append(f'{sid} ({", ".join(bad[:4])})')
    return out


def _is_finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t.detach()).all())


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise on (or skip) a training step with a non-finite loss or
    gradient, naming the iteration, the loss terms and the samples.

    Args:
        nonfinite (str): ``'raise'`` (stop the run with
            :class:`NonFiniteLossError`) or ``'skip'`` (leave out the
            optimizer step, zero the gradients, log a warning). Defaults to
            ``'raise'``.
        max_consecutive_skips (int): in ``'skip'`` mode, raise once more
            than this many steps in a row were skipped. Defaults to 10.
        check_grads (bool): check the gradients before each optimizer step
            as well (skipped under ``AmpOptimWrapper``). Defaults to True.
        max_ids (int): at most this many sample ids in a message.
            Defaults to 8.
        enable (bool): False turns the check off (mmengine does not accept
            ``None`` for this default hook). Defaults to True.
    """

    priority = 'VERY_HIGH'
    MODES = ('raise', 'skip')

    def __init__(self,
                 nonfinite: str = 'raise',
                 max_consecutive_skips: int = 10,
                 check_grads: bool = True,
                 max_ids: int = 8,
                 enable: bool = True) -> None:
        if nonfinite not in self.MODES:
            raise ValueError(f'FiniteLossHook: nonfinite must be one of '
                             f'{self.MODES}, got {nonfinite!r}')
        if int(max_consecutive_skips) < 0:
            raise ValueError('FiniteLossHook: max_consecutive_skips must be '
                             f'>= 0, got {max_consecutive_skips}')
        self.nonfinite = nonfinite
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.check_grads = check_grads
        self.max_ids = max_ids
        self.enable = enable
        self._patched = []
        self._runner = None
        self._batch = None
        self._log_vars = None
        self._param_names = {}
        self.consecutive_skips = 0
        self.total_skips = 0

    # ------------------------------------------------------------------
    # installing / removing the wrappers
    # ------------------------------------------------------------------
    def _patch(self, obj, name: str, wrapper) -> None:
        setattr(obj, name, wrapper)
        self._patched.append((obj, name))

    def _unpatch(self) -> None:
        for obj, name in reversed(self._patched):
            try:
                delattr(obj, name)
            except AttributeError:
                pass
        self._patched = []

    def before_train(self, runner) -> None:
        self._unpatch()
        if not self.enable:
            return
        self._runner = runner
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self._param_names = {
            id(p): name
            for name, p in model.named_parameters()
        }
        self.total_skips = int(
            runner.message_hub.get_info('nonfinite_skips', 0) or 0)
        self.consecutive_skips = 0
        if hasattr(model, 'parse_losses'):
            self._patch(model, 'parse_losses',
                        self._wrap_parse_losses(model.parse_losses))
        wrappers = runner.optim_wrapper
        wrappers = list(wrappers.values()) if isinstance(
            wrappers, OptimWrapperDict) else [wrappers]
        for ow in wrappers:
            self._patch(ow, 'update_params',
                        self._wrap_update_params(ow, ow.update_params))
            self._patch(ow, 'step', self._wrap_step(ow, ow.step))

    def after_train(self, runner) -> None:
        self._unpatch()
        self._batch = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        self._batch = data_batch
        self._log_vars = None

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self._batch = None
        self._log_vars = None

    # ------------------------------------------------------------------
    # the wrappers
    # ------------------------------------------------------------------
    def _wrap_parse_losses(self, parse_losses):

        def wrapped(losses):
            loss, log_vars = parse_losses(losses)
            self._log_vars = log_vars
            return loss, log_vars

        return wrapped

    def _agree(self, bad: bool, device) -> bool:
        """True on every rank when any rank saw a non-finite value."""
        if get_world_size() <= 1:
            return bad
        flag = torch.tensor([float(bad)], device=device)
        all_reduce(flag, op='max')
        return bool(flag.item() > 0)

    def _wrap_update_params(self, ow, update_params):

        def wrapped(loss, step_kwargs=None, zero_kwargs=None):
            local_bad = not _is_finite(loss)
            device = loss.device if torch.is_tensor(loss) else 'cpu'
            if self._agree(local_bad, device):
                what = self._loss_terms(loss) if local_bad else (
                    'the loss of another rank')

                def skip():
                    # backward keeps distributed ranks in step (DDP reduces
                    # gradients in it); the gradients are then dropped
                    if torch.is_tensor(loss) and loss.requires_grad:
                        ow.backward(ow.scale_loss(loss))
                    ow.zero_grad(**(zero_kwargs or {}))

                self._handle(f'non-finite loss ({what})', skip=skip)
                return None
            return update_params(loss, step_kwargs, zero_kwargs)

        return wrapped

    def _wrap_step(self, ow, step):
        amp = hasattr(ow, 'loss_scaler')

        def wrapped(**kwargs):
            if self.check_grads and not amp:
                bad = self._nonfinite_grads(ow)
                if bad:
                    shown = ', '.join(bad[:self.max_ids])
                    more = (f' and {len(bad) - self.max_ids} more'
                            if len(bad) > self.max_ids else '')
                    self._handle(
                        'finite loss but non-finite gradients of '
                        f'{len(bad)} parameter(s): {shown}{more}',
                        skip=ow.zero_grad)
                    return None
            out = step(**kwargs)
            self.consecutive_skips = 0
            return out

        return wrapped

    # ------------------------------------------------------------------
    # checks and messages
    # ------------------------------------------------------------------
    def _loss_terms(self, loss) -> str:
        """``'loss_a=nan, loss_b=inf'``: the non-finite terms of the last
        parsed loss dict (the total when the terms are unknown)."""
        log_vars = self._log_vars or {}
        bad = []
        for key, value in log_vars.items():
            if key == 'loss':
                continue
            if torch.is_tensor(value) and not _is_finite(value):
                bad.append(f'{key}={float(value.detach().float().sum())}')
            elif isinstance(value, float) and not math.isfinite(value):
                bad.append(f'{key}={value}')
        if not bad:
            total = float(
                loss.detach().float().sum()) if torch.is_tensor(loss) else loss
            bad = [f'loss={total}']
        return 'terms ' + ', '.join(bad)

    def _nonfinite_grads(self, ow) -> List[str]:
        grads, params = [], []
        for group in ow.optimizer.param_groups:
            for p in group['params']:
                if p.grad is not None:
                    grads.append(p.grad)
                    params.append(p)
        if not grads:
            return []
        # one float32 sum per tensor: NaN / Inf anywhere makes the total
        # non-finite (a max-abs norm gives the same answer 25x slower on
        # CPU: 33 vs 1.3 ms for the 11.9M gradients of the synthetic A2P
        # model); finite float32 sums can only overflow when the gradients
        # are beyond 1e31, which is a diverged step anyway
        total = torch.stack([
            g.detach().sum(dtype=torch.float32)
            if g.is_floating_point() else g.detach().sum().abs().float()
            for g in grads
        ]).sum()
        if _is_finite(total):
            return []
        return [
            self._param_names.get(id(p), f'<param {i}>')
            for i, (p, g) in enumerate(zip(params, grads)) if not _is_finite(g)
        ]

    def _where(self) -> str:
        runner = self._runner
        it = runner.iter + 1 if runner is not None else '?'
        where = f'iteration {it}'
        # IterBasedTrainLoop also has max_epochs (1): name the epoch only
        # where the loop counts epochs
        from mmengine.runner import EpochBasedTrainLoop
        if runner is not None and isinstance(runner.train_loop,
                                             EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        ids = batch_sample_ids(self._batch)
        if ids['nonfinite']:
            shown = ids['nonfinite'][:self.max_ids]
            samples = ('samples with non-finite inputs or annotations: ' +
                       '; '.join(shown))
        elif ids['all']:
            shown = ids['all'][:self.max_ids]
            more = (f' and {len(ids["all"]) - self.max_ids} more'
                    if len(ids['all']) > self.max_ids else '')
            samples = 'batch samples: ' + ', '.join(shown) + more
        else:
            samples = 'the batch carries no sample ids'
        return f'{where}; {samples}'

    def _handle(self, what: str, skip) -> None:
        message = f'{what} at {self._where()}'
        if self.nonfinite == 'raise':
            message += (
                '. Stopped before the optimizer step, so the weights and '
                'checkpoints stay finite. Find the cause (a sample, a loss '
                'term, the learning rate), or skip such steps with '
                '--cfg-options default_hooks.finite_check.nonfinite=skip')
            print_log(message, logger='current', level=logging.ERROR)
            raise NonFiniteLossError(message)
        skip()
        self.total_skips += 1
        self.consecutive_skips += 1
        if self._runner is not None:
            self._runner.message_hub.update_info('nonfinite_skips',
                                                 self.total_skips)
        if self.consecutive_skips > self.max_consecutive_skips:
            message = (
                f'{self.consecutive_skips} optimizer steps in a row skipped '
                f'(max_consecutive_skips={self.max_consecutive_skips}); the '
                f'last: {message}. Stopping: the run is not recovering')
            print_log(message, logger='current', level=logging.ERROR)
            raise NonFiniteLossError(message)
        print_log(
            f'{message}. Optimizer step skipped ({self.total_skips} '
            f'skipped in this run, {self.consecutive_skips} in a row)',
            logger='current',
            level=logging.WARNING)
