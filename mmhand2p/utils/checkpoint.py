# Copyright (c) mmhand2p contributors. All rights reserved.
"""Reading checkpoint files with errors that name the file.

``torch.load`` on a bad file raises whatever its parser hits first
(``EOFError``, ``RuntimeError: PytorchStreamReader failed ...``,
``UnpicklingError: Weights only load failed ...``), and a checkpoint of
another model loads "successfully" into nothing when loading is not strict.
Everything here raises :class:`CheckpointError` instead, with the path, what
is wrong with it and what to do. The inference API (``init_model``), the
demo (exit code 2) and ``DetectThenReconstruct``'s part loading use it.

Unpickling runs with ``weights_only=True``; callers that load mmengine
training checkpoints allow-list their classes first
(:func:`register_checkpoint_safe_globals`, also importable from
``mmhand2p.engine.checkpoint``).

Why an allow-list (moved here from ``mmhand2p.engine.checkpoint`` so that
every layer can load checkpoints): torch >= 2.6 loads with
``weights_only=True`` by default, which refuses any class that is not
allow-listed. mmengine 0.10.7 checkpoints hold, besides tensors, the
message hub's ``HistoryBuffer`` objects (training log history) and numpy
arrays / scalars / dtypes inside them. Rather than turning ``weights_only``
off (which would let a checkpoint run arbitrary code), exactly those
classes are allow-listed. ``HistoryBuffer.__getstate__`` stores its
statistics functions, which pickle as ``builtins.getattr(HistoryBuffer,
'min')``, and ``getattr`` must never be allow-listed; its
``__setstate__`` restores the four default statistics by itself, so
:func:`patch_history_buffer_pickling` leaves those out of the saved state
(custom registered statistics are kept).
"""
import logging
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmhand2p.registry import WEIGHT_INITIALIZERS

__all__ = [
    'checkpoint_safe_globals', 'patch_history_buffer_pickling',
    'register_checkpoint_safe_globals', 'CheckpointError', 'read_checkpoint',
    'state_dict_of',
    'describe_key_mismatch', 'read_state_dict', 'strip_prefix',
    'load_state_dict_strict', 'StrictPretrainedInit'
]


_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def checkpoint_safe_globals() -> List[object]:
    """The classes and functions that mmengine checkpoints pickle."""
    from mmengine.logging.history_buffer import HistoryBuffer
    core = np._core if hasattr(np, '_core') else np.core  # numpy 2 / 1
    safe = [
        HistoryBuffer,
        core.multiarray._reconstruct,
        core.multiarray.scalar,
        np.ndarray,
        np.dtype,
    ]
    # numpy >= 1.25 pickles dtypes through their classes (Float64DType...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, n) for n in dir(dtypes)
            if n.endswith('DType') and isinstance(getattr(dtypes, n), type)
        ]
    return safe


def patch_history_buffer_pickling() -> None:
    """Save ``HistoryBuffer`` without its default statistics functions."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if getattr(HistoryBuffer.__getstate__, '_mmhand2p_patched', False):
        return

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop('statistics_methods', None)
        custom = {
            k: v
            for k, v in self._statistics_methods.items()
            if k not in _DEFAULT_STATISTICS
        }
        if custom:
            state['statistics_methods'] = custom
        return state

    __getstate__._mmhand2p_patched = True
    HistoryBuffer.__getstate__ = __getstate__


def register_checkpoint_safe_globals() -> bool:
    """Allow-list :func:`checkpoint_safe_globals` for ``torch.load`` and
    apply :func:`patch_history_buffer_pickling`.

    Returns:
        bool: False on torch versions without ``add_safe_globals`` (< 2.4),
        where nothing needs to be done.
    """
    import torch.serialization
    patch_history_buffer_pickling()
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(checkpoint_safe_globals())
    return True


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint that cannot be used: missing weights, an empty,
    truncated or non-checkpoint file, or the weights of another model.

    A ``ValueError`` (a bad input value); also a ``RuntimeError``, which is
    what mmengine's strict ``load_checkpoint`` raises, so code written for
    that keeps catching it.
    """


def _reason(err: BaseException) -> str:
    """The informative line of a ``torch.load`` error (its weights-only
    message is a long how-to; the reason is the ``WeightsUnpickler`` line)."""
    text = str(err).strip()
    match = re.search(
        r'WeightsUnpickler error:(.*?)(Check the documentation|$)', text, re.S)
    if match and match.group(1).strip():
        text = match.group(1)
    else:
        text = text.splitlines()[0] if text else ''
    text = ' '.join(text.split())[:300]
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def read_checkpoint(path: str, what: str = 'checkpoint'):
    """Load a checkpoint file on the CPU (``torch.load(weights_only=True)``).

    Args:
        path (str): a local file, or a URL / other mmengine file backend
            (``'://'`` in it), loaded by mmengine's checkpoint loader.
        what (str): how messages name the file, e.g. ``'detector
            checkpoint'``.

    Returns:
        object: what the file holds (a dict for every checkpoint).

    Raises:
        FileNotFoundError: a local path that does not exist (or is not a
            file).
        CheckpointError: the file is empty, truncated, not a PyTorch
            checkpoint, or holds classes that are not allow-listed.
    """
    import torch
    path = os.fspath(path)
    remote = '://' in path
    if not remote:
        if not osp.exists(path):
            raise FileNotFoundError(f'{what} not found: {path!r}')
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{what} {path!r} is a folder, not a checkpoint file')
        if osp.getsize(path) == 0:
            raise CheckpointError(
                f'{what} {path!r} is empty (0 bytes): an interrupted '
                'download or copy? Fetch or write it again')
    try:
        if remote:
            from mmengine.runner.checkpoint import _load_checkpoint
            return _load_checkpoint(path, map_location='cpu')
        return torch.load(path, map_location='cpu', weights_only=True)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 (every parser error, named)
        size = '' if remote else f' ({osp.getsize(path)} bytes)'
        raise CheckpointError(
            f'{what} {path!r}{size} cannot be read as a PyTorch '
            f'checkpoint ({_reason(e)}): it is truncated (an interrupted '
            'download or copy?), not a checkpoint file, or holds objects '
            'that are not plain weights') from e


def state_dict_of(ckpt,
                  path: str,
                  what: str = 'checkpoint') -> Dict[str, object]:
    """The state dict of a loaded checkpoint (its ``state_dict`` entry, or
    the dict itself), with a ``module.`` prefix (DataParallel /
    DistributedDataParallel) removed from the keys.

    Raises:
        CheckpointError: it is not a dict of named tensors (``torch.nn``
            extra states, keys ending in ``_extra_state``, may be anything).
    """
    import torch
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise CheckpointError(
            f'{what} {path!r} holds a {type(ckpt).__name__}, not a '
            "checkpoint (a dict of weights, or a dict with 'state_dict')")
    bad = [
        k for k, v in state.items() if not isinstance(k, str)
        or not (isinstance(v, torch.Tensor) or k.endswith('_extra_state'))
    ]
    if bad:
        raise CheckpointError(
            f'{what} {path!r} is not a checkpoint: {len(bad)} of its '
            f'{len(state)} entries are not named tensors (e.g. '
            f'{[str(k) for k in bad[:5]]})')
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def describe_key_mismatch(missing: Sequence[str],
                          unexpected: Sequence[str],
                          limit: int = 10) -> str:
    """``'N missing key(s): [...]; M unexpected key(s): [...]'``, the first
    ``limit`` of each."""
    parts = []
    for name, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
            parts.append(f'{len(keys)} {name} key(s): {list(keys[:limit])}'
                         f'{more}')
    return '; '.join(parts) if parts else 'no key differs'


def read_state_dict(path: str, what: str = 'checkpoint') -> Dict[str, object]:
    """The weights of a checkpoint file (``module.`` removed), loaded with
    mmengine's training-checkpoint classes allow-listed.

    Args:
        path (str): a local file or a URL.
        what (str): how messages name the file, e.g. ``'detector
            checkpoint'``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: an empty, truncated or non-checkpoint file.
    """
    register_checkpoint_safe_globals()
    return state_dict_of(read_checkpoint(path, what), path, what)


def strip_prefix(state: Dict[str, object],
                 prefix: Optional[str]) -> Dict[str, object]:
    """The entries of ``state`` under ``prefix`` (e.g. ``'backbone.'``),
    with the prefix removed; ``state`` itself when no key has it (a part's
    own checkpoint) or ``prefix`` is empty."""
    if not prefix or not any(k.startswith(prefix) for k in state):
        return state
    return {
        k[len(prefix):]: v
        for k, v in state.items() if k.startswith(prefix)
    }


def load_state_dict_strict(module,
                           state: Dict[str, object],
                           path: str,
                           what: str = 'checkpoint',
                           allow_missing: Sequence[str] = ()) -> List[str]:
    """Load ``state`` into ``module``: every weight of ``module`` must be
    there, except those under the prefixes ``allow_missing``, and every
    shape must match. The one strict loader of the package's parts
    (``DetectThenReconstruct``'s detector and reconstructor, the
    ``StrictPretrained`` initializer).

    Args:
        module (nn.Module): what to load into.
        state (dict): the weights (see :func:`read_state_dict`,
            :func:`strip_prefix`).
        path (str): where they come from (for messages).
        what (str): how messages name the part, e.g. ``'detector'``.
        allow_missing (Sequence[str]): key prefixes that may be absent
            (e.g. ``('refiner.', )`` when the refiner has its own file).

    Returns:
        list[str]: the keys of ``state`` that ``module`` does not use (the
        caller may warn about them).

    Raises:
        CheckpointError: a missing weight (the first ones named, with how
            many of the file's weights match) or a shape mismatch.
    """
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(
            f'the {what} checkpoint {path!r} does not match the {what} '
            f'config: {" ".join(str(e).split())[:1000]}') from e
    missing = [
        k for k in missing if not any(k.startswith(a) for a in allow_missing)
    ]
    if missing:
        raise CheckpointError(
            f'the {what} checkpoint {path!r} lacks {len(missing)} '
            f'weight(s) of the {what} config, e.g. {missing[:5]} '
            f'({len(state) - len(unexpected)} of its {len(state)} weights '
            'match): was it trained with this config?')
    return list(unexpected)


@WEIGHT_INITIALIZERS.register_module(name='StrictPretrained')
class StrictPretrainedInit:
    """mmengine's ``Pretrained`` initializer, strict: ``init_cfg=dict(
    type='StrictPretrained', checkpoint=PATH, prefix=None)``.

    mmengine's ``PretrainedInit`` loads with ``strict=False``: a checkpoint
    of another model initialises nothing and says so only in the log. This
    one refuses a checkpoint that lacks any weight of the module (naming
    the keys) or whose shapes differ; unused extra weights are logged.

    Args:
        checkpoint (str): the checkpoint file (or URL).
        prefix (str, optional): take the weights under this prefix (e.g.
            ``'backbone.'`` of a whole model's checkpoint), prefix removed.
        allow_missing (Sequence[str]): key prefixes (of the module) that
            may be absent.
        map_location (str): accepted for ``PretrainedInit`` configs; the
            weights are always read on the CPU.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 allow_missing: Sequence[str] = (),
                 map_location: str = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.allow_missing = tuple(allow_missing)
        self.map_location = map_location

    def __call__(self, module) -> None:
        from mmengine.logging import print_log
        what = type(module).__name__
        state = read_state_dict(self.checkpoint, f'{what} checkpoint')
        if self.prefix:
            if not any(k.startswith(self.prefix) for k in state):
                raise CheckpointError(
                    f'StrictPretrained: no weight of {self.checkpoint!r} '
                    f'starts with prefix {self.prefix!r}')
            state = strip_prefix(state, self.prefix)
        unused = load_state_dict_strict(module, state, self.checkpoint, what,
                                        self.allow_missing)
        if unused:
            print_log(
                f'StrictPretrained: {len(unused)} weight(s) of '
                f'{self.checkpoint!r} are not used by the {what} (e.g. '
                f'{unused[:3]})',
                logger='current',
                level=logging.WARNING)
        print_log(
            f'StrictPretrained: {what} loaded from {self.checkpoint}',
            logger='current')
        if hasattr(module, '_params_init_info'):
            from mmengine.model.weight_init import update_init_info
            update_init_info(
                module,
                init_info=f'StrictPretrained: load from {self.checkpoint}')
