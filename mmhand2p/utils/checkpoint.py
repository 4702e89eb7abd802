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
(:func:`mmhand2p.engine.checkpoint.register_checkpoint_safe_globals`).
"""
import os
import os.path as osp
import re
from typing import Dict, Sequence

__all__ = [
    'CheckpointError', 'read_checkpoint', 'state_dict_of',
    'describe_key_mismatch'
]


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
