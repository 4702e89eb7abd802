# Copyright (c) mmhand2p contributors. All rights reserved.
"""A checkpoint hook whose saves a kill cannot turn into a lost run.

mmengine 0.10.7's ``CheckpointHook`` (with ``max_keep_ckpts``) removes the
oldest checkpoint *before* writing the new one, writes the new one in place
(``open(path, 'wb')``), and then points ``last_checkpoint`` at it. A
``SIGKILL`` during that write leaves a truncated ``iter_N.pth``, the previous
checkpoint already deleted and ``last_checkpoint`` naming one of the two, so
``--resume`` fails and the run is lost.

:class:`SafeCheckpointHook` keeps every option of ``CheckpointHook`` and
changes only the order and the way files are written:

1. the model and optimizer state are checked for non-finite values; a save
   of NaN / Inf weights is refused (``NonFiniteCheckpointError`` names the
   tensors) before anything is written;
2. the checkpoint goes to a hidden temporary file in the same folder, is
   ``fsync``-ed and renamed into place (:func:`mmhand2p.utils.fileio.
   atomic_write`, through the ``mmhand2p_atomic_local`` file backend);
3. only then is ``last_checkpoint`` rewritten (atomically as well);
4. only then are checkpoints beyond ``max_keep_ckpts`` and the previous
   ``best_*`` checkpoint removed.

A kill at any moment leaves ``last_checkpoint`` naming a complete file. At
``before_train`` the temporaries of a killed save (``.iter_N.pth.*.tmp``)
are removed, and at ``before_run`` an automatic resume (``--resume``
without a path) whose ``last_checkpoint`` names a missing or truncated file
(as an older, unsafe hook could leave) falls back, with a warning, to the
newest complete checkpoint of the work dir.

Why a new name rather than registering ``CheckpointHook`` again in the
``mmhand2p`` scope: the type written in a config then says which hook runs.
A shadowing ``CheckpointHook`` would be safe in mmhand2p-scoped configs and
silently unsafe in the ``mmdet``-scoped ``configs/rtmdet_hand`` ones, which
look identical; ``SafeCheckpointHook`` fails loudly where mmhand2p is not
imported. ``configs/_base_/default_runtime.py`` sets it, so a config that
only overrides ``interval`` / ``max_keep_ckpts`` gets it, and
``tests/test_engine/test_safe_checkpoint_hook.py`` checks every config.

Only local folders get the atomic write: for other storage backends
(``backend_args`` / ``file_client_args`` naming petrel, http...) and for
``FlexibleRunner`` strategies (which write the file themselves) the write is
mmengine's, with a warning; the order (old files removed after the new one
is written) holds for all.
"""
import logging
import os.path as osp
from collections import deque
from typing import List, Optional

import torch
from mmengine.dist import is_main_process, master_only
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmhand2p.registry import HOOKS
from mmhand2p.utils import fileio
from ..checkpoint import checkpoint_is_complete, latest_complete_checkpoint

__all__ = [
    'SafeCheckpointHook', 'AtomicLocalBackend', 'NonFiniteCheckpointError',
    'nonfinite_tensors'
]

#: the name of :class:`AtomicLocalBackend` in mmengine's file backends
ATOMIC_BACKEND = 'mmhand2p_atomic_local'


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` write
    through :func:`mmhand2p.utils.fileio.atomic_write` (temporary file in
    the same folder, ``fsync``, rename): a reader never sees a partial
    file. Selected with ``backend_args=dict(backend='mmhand2p_atomic_local')``.
    """

    def put(self, obj: bytes, filepath) -> None:
        fileio.atomic_write_bytes(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        if encoding.lower().replace('-', '') != 'utf8':
            fileio.atomic_write_bytes(str(filepath), obj.encode(encoding))
            return
        with fileio.atomic_write(str(filepath), 'w') as f:
            f.write(obj)


class NonFiniteCheckpointError(RuntimeError):
    """A checkpoint would have stored NaN / Inf values."""


def nonfinite_tensors(tree, prefix: str = '') -> List[str]:
    """Dotted names of the floating-point tensors in a nested dict / list
    (a state dict, an optimizer state) that hold NaN or Inf."""
    bad = []
    if torch.is_tensor(tree):
        if tree.is_floating_point() or tree.is_complex():
            if not bool(torch.isfinite(tree).all()):
                bad.append(prefix or '<tensor>')
    elif isinstance(tree, dict):
        for key, value in tree.items():
            bad += nonfinite_tensors(value,
                                     f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            bad += nonfinite_tensors(value, f'{prefix}[{i}]')
    return bad


def _describe(names: List[str], limit: int = 10) -> str:
    shown = ', '.join(names[:limit])
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return f'{len(names)} tensor(s): {shown}{more}'


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic saves, removal of old checkpoints only
    after the new one is complete, and no checkpoint of non-finite weights.

    Arguments are those of :class:`mmengine.hooks.CheckpointHook`, plus:

    Args:
        check_finite (bool): refuse (raise :class:`NonFiniteCheckpointError`
            naming the tensors) to save a model, EMA copy or optimizer state
            holding NaN / Inf. Defaults to True.
        resume_fallback (bool): on an automatic resume whose
            ``last_checkpoint`` names a missing or truncated file, resume
            from the newest complete checkpoint of the work dir instead of
            failing. Defaults to True.
    """

    def __init__(self,
                 *args,
                 check_finite: bool = True,
                 resume_fallback: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.check_finite = check_finite
        self.resume_fallback = resume_fallback
        self._atomic = None  # decided in before_train (needs out_dir)

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    def _is_local(self, out_dir: str) -> bool:
        if self.file_client_args is not None:
            return False
        backend = get_file_backend(out_dir, backend_args=self.backend_args)
        return isinstance(backend, LocalBackend)

    def _resolved_out_dir(self, runner) -> str:
        out_dir = self.out_dir if self.out_dir is not None else \
            runner.work_dir
        if out_dir != runner.work_dir:
            out_dir = osp.join(out_dir,
                               osp.basename(runner.work_dir.rstrip(osp.sep)))
        return out_dir

    def before_run(self, runner) -> None:
        """Check the checkpoint an automatic resume would load."""
        if not self.resume_fallback:
            return
        if not (getattr(runner, '_resume', False)
                and getattr(runner, '_load_from', '') is None):
            return
        save_file = osp.join(runner.work_dir, 'last_checkpoint')
        last = None
        if osp.isfile(save_file):
            with open(save_file) as f:
                last = f.read().strip() or None
        if last is not None and ('://' in last
                                 or checkpoint_is_complete(last)):
            return  # mmengine resumes from it as usual
        out_dir = self._resolved_out_dir(runner)
        folders = [runner.work_dir, out_dir]
        if last is not None:
            folders.insert(0, osp.dirname(last))
        fallback = latest_complete_checkpoint(
            folders,
            patterns=(self.filename_tmpl, 'iter_{}.pth', 'epoch_{}.pth'),
            exclude=[last] if last else ())
        if last is None and fallback is None:
            return  # nothing saved yet: mmengine starts from scratch
        if fallback is None:
            raise FileNotFoundError(
                f'resume: {save_file} names {last}, which is missing or '
                f'truncated, and no complete checkpoint '
                f'({self.filename_tmpl.format("N")}) is left in '
                f'{sorted(set(folders))}; start without --resume or give '
                'a checkpoint with --resume PATH')
        why = ('is missing' if last is None else
               f'names {last}, which is missing or truncated')
        print_log(
            f'resume: {save_file} {why}; resuming from the newest complete '
            f'checkpoint {fallback} instead',
            logger='current',
            level=logging.WARNING)
        runner._load_from = fallback

    def before_train(self, runner) -> None:
        """mmengine's set-up, then choose the writer and remove the
        temporaries of a killed save."""
        super().before_train(runner)
        local = self._is_local(self.out_dir)
        from mmengine.runner import Runner
        if not local:
            print_log(
                f'SafeCheckpointHook: {self.out_dir} is not a local folder; '
                'checkpoints are written by its storage backend as mmengine '
                'does (not atomically). Old checkpoints are still removed '
                'only after the new one is written.',
                logger='current',
                level=logging.WARNING)
        elif not isinstance(runner, Runner):
            print_log(
                f'SafeCheckpointHook: {type(runner).__name__} writes '
                'checkpoints through its strategy, not atomically. Old '
                'checkpoints are still removed only after the new one is '
                'written.',
                logger='current',
                level=logging.WARNING)
        self._atomic = local and isinstance(runner, Runner)
        if local and is_main_process():
            prefixes = [
                '.' + self.filename_tmpl.split('{}')[0], '.best_',
                '.last_checkpoint.'
            ]
            for folder in dict.fromkeys([self.out_dir, runner.work_dir]):
                for prefix in prefixes:
                    for path in fileio.remove_stale_temporaries(
                            folder, prefix=prefix, suffix='.tmp'):
                        runner.logger.warning(
                            f'removed {path}, left by an interrupted save')

    # ------------------------------------------------------------------
    # writing
    # ------------------------------------------------------------------
    @property
    def _save_backend_args(self) -> Optional[dict]:
        if self._atomic:
            return dict(backend=ATOMIC_BACKEND)
        return self.backend_args

    def _check_model_finite(self, runner) -> None:
        if not self.check_finite:
            return
        model = runner.model
        model = getattr(model, 'module', model)
        bad = [
            name for name, p in model.named_parameters()
            if (p.is_floating_point() and not bool(torch.isfinite(p).all()))
        ]
        if bad:
            raise NonFiniteCheckpointError(
                f'not saving a checkpoint at iteration {runner.iter + 1}: '
                f'the model has non-finite weights in {_describe(bad)}. '
                'The last checkpoint written before them is '
                f'{self.last_ckpt or "none"}; find the cause (learning '
                'rate, a bad sample, a loss term) before resuming from it.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a checkpoint holding non-finite values (after the other
        hooks, e.g. ``EMAHook``, have filled it in)."""
        if not self.check_finite:
            return
        bad = []
        for key in ('state_dict', 'ema_state_dict', 'optimizer'):
            if key in checkpoint:
                bad += nonfinite_tensors(checkpoint[key], key)
        if bad:
            raise NonFiniteCheckpointError(
                f'not saving a checkpoint at iteration {runner.iter + 1}: '
                f'it would hold non-finite values in {_describe(bad)}. '
                'The last checkpoint written before them is '
                f'{self.last_ckpt or "none"}.')

    def _remove(self, path: str, runner=None) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            # checkpoints saved by deepspeed are directories
            self.file_backend.rmtree(path)
        else:
            return
        if runner is not None:
            runner.logger.info(f'removed the older checkpoint {path}')

    def _write_last_checkpoint(self, runner, path: str) -> None:
        # the work dir is always a local folder in mmengine
        with fileio.atomic_write(
                osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
            f.write(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Save ``filename_tmpl.format(step)``; then ``last_checkpoint``;
        then remove checkpoints beyond ``max_keep_ckpts``."""
        self._check_model_finite(runner)
        outdated = []
        if self.max_keep_ckpts > 0:
            # _save_checkpoint and _save_best_checkpoint may both save the
            # same step
            if not (len(self.keep_ckpt_ids) > 0
                    and self.keep_ckpt_ids[-1] == step):
                keep = list(self.keep_ckpt_ids) + [step]
                outdated = keep[:-self.max_keep_ckpts]
                self.keep_ckpt_ids = deque(keep[-self.max_keep_ckpts:],
                                           self.max_keep_ckpts)
                # stored in the checkpoint: it lists itself, not the
                # checkpoints it replaces
                runner.message_hub.update_info('keep_ckpt_ids',
                                               list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self._save_backend_args,
            **self.args)

        if not is_main_process():
            return
        self._write_last_checkpoint(runner, self.last_ckpt)
        for old in outdated:
            if old == step:
                continue
            self._remove(
                self.file_backend.join_path(self.out_dir,
                                            self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic, with the previous best removed
        after the new one is written (not before)."""
        if not self.save_best:
            return

        if self.by_epoch:
            ckpt_filename = self.filename_tmpl.format(runner.epoch)
            cur_type, cur_time = 'epoch', runner.epoch
        else:
            ckpt_filename = self.filename_tmpl.format(runner.iter)
            cur_type, cur_time = 'iter', runner.iter

        meta = dict(epoch=runner.epoch, iter=runner.iter)

        if 'auto' in self.key_indicators:
            self._init_rule(self.rules, [list(metrics.keys())[0]])

        best_ckpt_updated = False
        for key_indicator, rule in zip(self.key_indicators, self.rules):
            key_score = metrics[key_indicator]

            if len(self.key_indicators) == 1:
                best_score_key = 'best_score'
                runtime_best_ckpt_key = 'best_ckpt'
                previous = self.best_ckpt_path
            else:
                best_score_key = f'best_score_{key_indicator}'
                runtime_best_ckpt_key = f'best_ckpt_{key_indicator}'
                previous = self.best_ckpt_path_dict[key_indicator]

            if best_score_key not in runner.message_hub.runtime_info:
                best_score = self.init_value_map[rule]
            else:
                best_score = runner.message_hub.get_info(best_score_key)

            if key_score is None or not self.is_better_than[key_indicator](
                    key_score, best_score):
                continue

            best_ckpt_updated = True
            best_score = key_score
            runner.message_hub.update_info(best_score_key, best_score)

            best_ckpt_name = f'best_{key_indicator}_{ckpt_filename}'
            best_ckpt_name = best_ckpt_name.replace('/', '_')
            best_path = self.file_backend.join_path(self.out_dir,
                                                    best_ckpt_name)
            if len(self.key_indicators) == 1:
                self.best_ckpt_path = best_path
            else:
                self.best_ckpt_path_dict[key_indicator] = best_path
            runner.message_hub.update_info(runtime_best_ckpt_key, best_path)
            self._check_model_finite(runner)
            runner.save_checkpoint(
                self.out_dir,
                filename=best_ckpt_name,
                file_client_args=self.file_client_args,
                save_optimizer=False,
                save_param_scheduler=False,
                meta=meta,
                by_epoch=False,
                backend_args=self._save_backend_args)
            runner.logger.info(
                f'The best checkpoint with {best_score:0.4f} {key_indicator} '
                f'at {cur_time} {cur_type} is saved to {best_ckpt_name}.')
            if previous and previous != best_path and is_main_process():
                if self.file_backend.exists(previous):
                    self._remove(previous)
                    runner.logger.info(
                        f'The previous best checkpoint {previous} is removed')

        # save the regular checkpoint again so that the message hub it
        # stores names the current best (as mmengine does)
        if best_ckpt_updated and self.last_ckpt is not None:
            self._save_checkpoint_with_step(runner, cur_time, meta)

    @master_only
    def _publish_model(self, runner, ckpt_path: str) -> None:
        """mmengine's published model (``published_keys`` only, named with
        its sha256 prefix), written atomically."""
        if not self._atomic:
            return super()._publish_model(runner, ckpt_path)
        import hashlib
        import io

        from mmengine.runner.checkpoint import _load_checkpoint
        checkpoint = _load_checkpoint(ckpt_path, map_location='cpu')
        removed = [k for k in list(checkpoint) if k not in self.published_keys]
        for key in removed:
            checkpoint.pop(key)
        if removed:
            print_log(
                f'Key {removed} will be removed because they are not found '
                'in published_keys. If you want to keep them, please set '
                f'`{removed}` in published_keys',
                logger='current')
        with io.BytesIO() as buf:
            torch.save(checkpoint, buf)
            data = buf.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        final_path = osp.splitext(ckpt_path)[0] + f'-{sha[:8]}.pth'
        fileio.atomic_write_bytes(final_path, data)
        print_log(
            f'The checkpoint ({ckpt_path}) is published to {final_path}.',
            logger='current')
