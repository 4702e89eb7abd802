# Copyright (c) mmhand2p contributors. All rights reserved.
"""StagedOutputs: a failed commit leaves the previous run's files exactly as
they were; staging folders of killed runs are cleaned, those of running
writers are not."""
import os
import os.path as osp
import subprocess
import sys
import time

import pytest

from mmhand2p.apis import io as io_module
from mmhand2p.apis.io import (OutputsNotRestoredError, StagedOutputs,
                              atomic_write_bytes, remove_stale_staging)

PATTERNS = [
    r'x_overlay\.jpg', r'x_side\.jpg', r'x_hand\d+_(right|left)\.obj',
    r'x\.json'
]
#: the previous run: 2 hands, a side view, plus another image's file
PREVIOUS = {
    'x.json': b'{"run": 1}',
    'x_overlay.jpg': b'old overlay',
    'x_side.jpg': b'old side',
    'x_hand0_right.obj': b'old right',
    'x_hand1_left.obj': b'old left',
    'y.json': b'{"other image": true}',
}
#: this run: 1 hand, no side view (x_side.jpg and x_hand1_left.obj are
#: stale), plus a file that did not exist before
NEW = {
    'x.json': b'{"run": 2}',
    'x_overlay.jpg': b'new overlay',
    'x_hand0_right.obj': b'new right',
    'x_extra.txt': b'new file',
}


def _snapshot(folder):
    """name -> bytes of every entry (folders as None)."""
    out = {}
    for name in os.listdir(folder):
        path = osp.join(folder, name)
        out[name] = None if osp.isdir(path) else open(path, 'rb').read()
    return out


def _previous(out):
    os.makedirs(out, exist_ok=True)
    for name, data in PREVIOUS.items():
        with open(osp.join(out, name), 'wb') as f:
            f.write(data)
    return _snapshot(out)


def _commit(out):
    with StagedOutputs(out, PATTERNS) as staged:
        for name, data in NEW.items():
            atomic_write_bytes(staged.path(name), data)
    return staged


def _count_replaces(tmp_path, monkeypatch):
    """How many ``os.replace`` calls a successful commit makes after the
    files are staged."""
    out = str(tmp_path / 'count')
    _previous(out)
    real, calls = os.replace, []
    with StagedOutputs(out, PATTERNS) as staged:
        for name, data in NEW.items():
            atomic_write_bytes(staged.path(name), data)

        def counting(src, dst):
            calls.append(dst)
            real(src, dst)

        monkeypatch.setattr(os, 'replace', counting)
    monkeypatch.undo()
    return len(calls)


def test_successful_commit_replaces_and_removes_stale(tmp_path):
    out = str(tmp_path / 'out')
    _previous(out)
    staged = _commit(out)
    expected = {k: v for k, v in PREVIOUS.items() if k == 'y.json'}
    expected.update(NEW)
    assert _snapshot(out) == expected  # no staging folder either
    assert sorted(osp.basename(p) for p in staged.written) == sorted(NEW)


@pytest.mark.parametrize('link_works', [True, False])
def test_failure_on_every_move_keeps_previous_outputs(tmp_path, monkeypatch,
                                                      link_works):
    """Inject a failure at the n-th ``os.replace`` of the commit, for every
    n: the previous files stay byte-identical, nothing new appears."""
    total = _count_replaces(tmp_path, monkeypatch)
    # 4 new files moved in + 2 stale files moved aside
    assert total == 6
    if not link_works:  # file systems without hard links: copies

        def no_link(src, dst):
            raise OSError('hard links not supported')

        monkeypatch.setattr(os, 'link', no_link)
    real = os.replace
    for n in range(1, total + 1):
        out = str(tmp_path / f'out_{n}_{link_works}')
        before = _previous(out)
        calls = []

        def failing(src, dst):
            calls.append(dst)
            if len(calls) == n:
                raise OSError(f'device gone at move {n}')
            real(src, dst)

        with pytest.raises(OSError, match=f'device gone at move {n}'):
            with StagedOutputs(out, PATTERNS) as staged:
                for name, data in NEW.items():
                    atomic_write_bytes(staged.path(name), data)
                monkeypatch.setattr(os, 'replace', failing)
        monkeypatch.setattr(os, 'replace', real)
        assert _snapshot(out) == before, f'failure at move {n}'


def test_failure_while_writing_touches_nothing(tmp_path):
    out = str(tmp_path / 'out')
    before = _previous(out)
    with pytest.raises(RuntimeError, match='render failed'):
        with StagedOutputs(out, PATTERNS) as staged:
            atomic_write_bytes(staged.path('x.json'), b'new')
            raise RuntimeError('render failed')
    assert _snapshot(out) == before


def test_failed_restore_is_reported_and_backups_kept(tmp_path, monkeypatch):
    """If even putting the files back fails, the error says which and where
    the backups are; the staging folder with them is kept."""
    out = str(tmp_path / 'out')
    _previous(out)
    real, calls = os.replace, []

    def failing(src, dst):
        calls.append(dst)
        # the 3rd move fails, and so does every restore after it
        if len(calls) >= 3:
            raise OSError('device gone')
        real(src, dst)

    with pytest.raises(OutputsNotRestoredError) as info:
        with StagedOutputs(out, PATTERNS) as staged:
            for name, data in NEW.items():
                atomic_write_bytes(staged.path(name), data)
            monkeypatch.setattr(os, 'replace', failing)
    monkeypatch.undo()
    message = str(info.value)
    # sorted names: x.json, x_extra.txt moved in, x_hand0_right.obj failed;
    # the new x_extra.txt is removed again, x.json cannot be put back
    assert "1 earlier file(s) could not be put back: ['x.json']" in message
    assert 'x_extra.txt' not in os.listdir(out)
    staging = [n for n in os.listdir(out) if n.startswith('.staging_')]
    assert len(staging) == 1
    old = osp.join(out, staging[0], 'old')
    assert f'backups are in {old!r}' in message
    assert open(osp.join(old, 'x.json'), 'rb').read() == PREVIOUS['x.json']


def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_staging_folders_are_removed(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    host = io_module._host_tag()
    old_time = time.time() - 2 * io_module.STALE_STAGING_AGE_S
    folders = {
        # killed run on this machine (its PID is gone): removed at any age
        f'.staging_{_dead_pid()}@{host}_a1': (None, False),
        # a running writer (this process) in the same folder: kept
        f'.staging_{os.getpid()}@{host}_b2': (None, True),
        # an older version's folder without a PID: removed once old
        '.staging_c3old': (old_time, False),
        '.staging_d4new': (None, True),
        # another machine's folder: judged by age only
        f'.staging_1@{"0" * 8 if host != "0" * 8 else "1" * 8}_e5':
        (None, True),
        f'.staging_1@{"0" * 8 if host != "0" * 8 else "1" * 8}_f6':
        (old_time, False),
    }
    for name, (mtime, _) in folders.items():
        (out / name).mkdir()
        (out / name / 'x.json').write_bytes(b'{}')
        if mtime is not None:
            os.utime(out / name, (mtime, mtime))
    (out / 'x.json').write_bytes(b'kept')
    removed = remove_stale_staging(str(out))
    kept = {n for n, (_, keep) in folders.items() if keep}
    assert sorted(osp.basename(p)
                  for p in removed) == sorted(set(folders) - kept)
    assert set(os.listdir(out)) == kept | {'x.json'}
    # a new StagedOutputs cleans them too, and names its own folder with
    # its PID and host
    (out / f'.staging_{_dead_pid()}@{host}_g7').mkdir()
    with StagedOutputs(str(out)) as staged:
        own = osp.basename(osp.dirname(osp.dirname(staged.path('a'))))
        assert own.startswith(f'.staging_{os.getpid()}@{host}_')
        assert set(os.listdir(out)) == kept | {'x.json', own}


def test_sigkilled_writer_leaves_staging_that_the_next_run_cleans(tmp_path):
    """A real SIGKILL in the middle of staging (a subprocess kills itself):
    its hidden staging folder stays; the next StagedOutputs removes it and
    the earlier outputs are untouched."""
    out = str(tmp_path / 'out')
    before = _previous(out)
    script = (
        'import os, signal\n'
        'from mmhand2p.apis.io import StagedOutputs, atomic_write_bytes\n'
        f'with StagedOutputs({out!r}, []) as staged:\n'
        "    atomic_write_bytes(staged.path('x.json'), b'half')\n"
        '    os.kill(os.getpid(), signal.SIGKILL)\n')
    proc = subprocess.Popen([sys.executable, '-c', script])
    assert proc.wait() == -9
    left = [n for n in os.listdir(out) if n.startswith('.staging_')]
    assert len(left) == 1 and left[0].startswith(f'.staging_{proc.pid}@')
    with StagedOutputs(out, PATTERNS) as staged:
        atomic_write_bytes(staged.path('x.json'), b'{"run": 2}')
    after = _snapshot(out)
    assert not any(n.startswith('.staging_') for n in after)
    assert after['x.json'] == b'{"run": 2}'
    assert after['y.json'] == before['y.json']
