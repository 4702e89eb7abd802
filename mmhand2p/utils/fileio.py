# Copyright (c) mmhand2p contributors. All rights reserved.
"""Small file helpers shared by the package and its tools.

Every file the library writes that a later run relies on (checkpoints,
published models, caches, demo outputs) goes through :func:`atomic_write`:
the bytes go to a temporary file in the destination's folder, are flushed
and ``fsync``-ed, and only then renamed over the destination
(``os.replace`` is atomic on POSIX within one file system). A crash or a
``SIGKILL`` at any moment leaves either the old file or the new one, never
a partial one; at worst a hidden ``.<name>.*.tmp`` file is left behind,
which :func:`remove_stale_temporaries` cleans.
"""
import contextlib
import hashlib
import os
import os.path as osp
import tempfile
import time
from typing import IO, Callable, Iterator, List

__all__ = [
    'file_sha256', 'atomic_write', 'atomic_write_bytes', 'atomic_write_json',
    'atomic_torch_save',
    'fsync_dir', 'remove_stale_temporaries'
]


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str) -> None:
    """``fsync`` a folder so that a rename inside it survives a power loss
    (a no-op where folders cannot be opened, e.g. on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb') -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit of the
    ``with`` block it is flushed, ``fsync``-ed and renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it
    was (absent or the previous complete file). ``mode`` is ``'wb'`` or
    ``'w'`` (text, UTF-8).

    Example::

        with atomic_write('work_dir/iter_100.pth') as f:
            torch.save(checkpoint, f)
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got "
                         f'{mode!r}')
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        kwargs = dict(encoding='utf-8') if mode == 'w' else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600): give it the permissions a
        # plain open() would (0666 minus the umask)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, 'wb') as f:
        f.write(data)


def atomic_write_json(path: str, obj, **dump_kwargs) -> None:
    """``json.dump(obj, f, **dump_kwargs)`` to ``path`` through
    :func:`atomic_write` (text, UTF-8)."""
    import json
    with atomic_write(path, 'w') as f:
        json.dump(obj, f, **dump_kwargs)


def atomic_torch_save(obj, path: str,
                      save: Callable = None) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""
    if save is None:
        import torch
        save = torch.save
    with atomic_write(path, 'wb') as f:
        save(obj, f)


def remove_stale_temporaries(folder: str,
                             prefix: str = '.',
                             suffix: str = '.tmp',
                             older_than_s: float = 0.0) -> List[str]:
    """Remove temporaries that an interrupted :func:`atomic_write` left in
    ``folder`` (hidden ``.<name>.*.tmp`` files), returning their paths.

    Only files older than ``older_than_s`` seconds are removed, so a writer
    running concurrently in the same folder is not disturbed when a positive
    age is given.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    now = time.time()
    for name in os.listdir(folder):
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        path = osp.join(folder, name)
        try:
            if not osp.isfile(path) or now - osp.getmtime(path) < older_than_s:
                continue
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed
