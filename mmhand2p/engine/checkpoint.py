# Copyright (c) mmhand2p contributors. All rights reserved.
"""Loading mmengine checkpoints with ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses any
class that is not allow-listed. mmengine 0.10.7 checkpoints hold, besides
tensors, the message hub's ``HistoryBuffer`` objects (training log history)
and numpy arrays / scalars / dtypes inside them, so resuming fails with
"Unsupported global: GLOBAL mmengine.logging.history_buffer.HistoryBuffer".

Rather than turning ``weights_only`` off (which would let a checkpoint run
arbitrary code), we allow-list exactly those classes. One more obstacle:
``HistoryBuffer.__getstate__`` stores its statistics functions, which pickle
as ``builtins.getattr(HistoryBuffer, 'min')``, and ``getattr`` must never be
allow-listed. Its ``__setstate__`` restores the four default statistics
(min, max, current, mean) by itself, so :func:`patch_history_buffer_pickling`
leaves those out of the saved state (custom registered statistics are kept).
Checkpoints written by mmengine without this patch still need
``weights_only=False`` (only for files you trust). The list was found by
saving a checkpoint with mmengine's Runner and loading it until no class was
refused (``tests/test_engine/test_checkpoint_resume.py`` keeps it true).
"""
from typing import List

import numpy as np

__all__ = [
    'checkpoint_safe_globals', 'register_checkpoint_safe_globals',
    'patch_history_buffer_pickling'
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
