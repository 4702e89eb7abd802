# Copyright (c) mmhand2p contributors. All rights reserved.
"""Loading mmengine checkpoints with ``torch.load(weights_only=True)``.

The allow-list itself (:func:`checkpoint_safe_globals`,
:func:`patch_history_buffer_pickling`,
:func:`register_checkpoint_safe_globals`) lives in
:mod:`mmhand2p.utils.checkpoint`, so that every layer can load checkpoints;
it is re-exported here.

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
import os
import os.path as osp
import re
import zipfile
from typing import Optional, Sequence

from mmhand2p.utils.checkpoint import (  # noqa: F401 (re-exported)
    checkpoint_safe_globals, patch_history_buffer_pickling,
    register_checkpoint_safe_globals)

__all__ = [
    'checkpoint_safe_globals', 'register_checkpoint_safe_globals',
    'patch_history_buffer_pickling', 'checkpoint_is_complete',
    'latest_complete_checkpoint'
]


def checkpoint_is_complete(path: str) -> bool:
    """Whether ``path`` is a whole checkpoint, not one cut short.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a file cut short by a kill has none and fails to open; the members it
    lists must also lie inside the file. Directories (DeepSpeed
    checkpoints) count as complete when they exist. A file in torch's
    legacy (non-zip) format is loaded to find out. No CRC is checked
    (``torch.serialization.set_crc32_options(False)`` writes none).
    """
    if osp.isdir(path):
        return True
    if not osp.isfile(path):
        return False
    size = osp.getsize(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return False
        if not any(i.filename.endswith('data.pkl') for i in infos):
            return False
        return all(i.header_offset + i.compress_size <= size for i in infos)
    try:
        import torch
        register_checkpoint_safe_globals()
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # noqa: BLE001 - any failure means unusable
        return False
    return True


def _step_of(name: str, patterns: Sequence[str]) -> Optional[int]:
    for pattern in patterns:
        prefix, _, suffix = pattern.partition('{}')
        m = re.fullmatch(
            re.escape(prefix) + r'(\d+)' + re.escape(suffix), name)
        if m:
            return int(m.group(1))
    return None


def latest_complete_checkpoint(
    folders: Sequence[str],
    patterns: Sequence[str] = ('iter_{}.pth', 'epoch_{}.pth'),
    exclude: Sequence[str] = ()
) -> Optional[str]:
    """The complete checkpoint with the highest step number in ``folders``.

    Args:
        folders (Sequence[str]): where to look (missing ones are skipped).
        patterns (Sequence[str]): file name templates with one ``{}`` for
            the step (``CheckpointHook.filename_tmpl``).
        exclude (Sequence[str]): paths not to return (known to be bad).

    Returns:
        str | None: the path, or None when no complete checkpoint exists.
    """
    excluded = {osp.abspath(p) for p in exclude}
    found = []
    for folder in dict.fromkeys(folders):
        if not folder or not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            step = _step_of(name, patterns)
            path = osp.join(folder, name)
            if step is not None and osp.abspath(path) not in excluded:
                found.append((step, osp.getmtime(path), path))
    for _, _, path in sorted(found, reverse=True):
        if checkpoint_is_complete(path):
            return path
    return None
