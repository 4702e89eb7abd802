# Copyright (c) mmhand2p contributors. All rights reserved.
"""Test-only: make one checkpoint save stall half-way, so a test can kill
the training process in the middle of writing it.

Imported by a toy config through ``custom_imports`` (the tests put this
folder on ``PYTHONPATH``). It does nothing unless ``MMHAND2P_SLOW_SAVE``
names the checkpoint file to stall (e.g. ``iter_4.pth``); then the first
half of that file's bytes is written and flushed, the file named by
``MMHAND2P_SLOW_SAVE_MARKER`` is created, and the writer sleeps for a
minute before writing the rest. Both writers are slowed: the atomic one
(``mmhand2p.utils.fileio.atomic_write``, used by ``SafeCheckpointHook``)
and mmengine's in-place ``LocalBackend.put`` (used by ``CheckpointHook``),
so the same test shows what each leaves behind.
"""
import contextlib
import os
import os.path as osp
import time

TARGET = os.environ.get('MMHAND2P_SLOW_SAVE')
MARKER = os.environ.get('MMHAND2P_SLOW_SAVE_MARKER')
STALL_S = 60.0


def _write_slowly(f, data: bytes) -> None:
    half = len(data) // 2
    f.write(data[:half])
    f.flush()
    os.fsync(f.fileno())
    with open(MARKER, 'w') as m:
        m.write(f'{half} of {len(data)} bytes written\n')
    time.sleep(STALL_S)
    f.write(data[half:])


class _SlowFile:

    def __init__(self, f):
        self._f = f

    def write(self, data):
        _write_slowly(self._f, data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


def _install() -> None:
    from mmengine.fileio.backends.local_backend import LocalBackend

    from mmhand2p.utils import fileio

    real_atomic_write = fileio.atomic_write

    @contextlib.contextmanager
    def atomic_write(path, mode='wb'):
        with real_atomic_write(path, mode) as f:
            yield _SlowFile(f) if osp.basename(path) == TARGET else f

    real_put = LocalBackend.put

    def put(self, obj, filepath):
        if osp.basename(str(filepath)) != TARGET:
            return real_put(self, obj, filepath)
        with open(filepath, 'wb') as f:
            _write_slowly(f, obj)

    fileio.atomic_write = atomic_write
    LocalBackend.put = put


if TARGET and MARKER:
    _install()
