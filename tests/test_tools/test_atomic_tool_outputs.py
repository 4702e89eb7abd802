# Copyright (c) mmhand2p contributors. All rights reserved.
"""The checkpoints the tools write (publish_model.py, make_demo_checkpoints
.py) and DetectThenReconstruct's combined checkpoint are written atomically
(issue 12, item 1): the bytes are flushed to disk (fsync) under a temporary
name before the file appears under its own name, a failed write leaves no
file, and an earlier output stays until the new one is complete."""
import importlib.util
import os
import os.path as osp

import pytest
import torch

from mmhand2p.utils import fileio

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool(rel):
    spec = importlib.util.spec_from_file_location(
        '_tool_' + osp.basename(rel)[:-3], osp.join(REPO, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _watch_fsync(monkeypatch, folder):
    """Record, at each fsync of a file, the non-hidden files of
    ``folder``: an atomic writer syncs before the final name exists."""
    seen = []
    real = os.fsync

    def fsync(fd):
        if not os.path.isdir(f'/proc/self/fd/{fd}'):
            seen.append(
                sorted(n for n in os.listdir(folder) if not n.startswith('.')))
        real(fd)

    monkeypatch.setattr(fileio.os, 'fsync', fsync)
    return seen


def _fail_fsync(monkeypatch):

    def fsync(fd):
        raise OSError('disk full (simulated)')

    monkeypatch.setattr(fileio.os, 'fsync', fsync)


@pytest.fixture
def training_ckpt(tmp_path):
    from mmengine.runner import save_checkpoint
    net = torch.nn.Linear(3, 2)
    path = str(tmp_path / 'iter_10.pth')
    save_checkpoint(
        dict(state_dict=net.state_dict(), meta=dict(iter=10)), path)
    return path, net


def test_publish_model_syncs_before_naming(training_ckpt, tmp_path,
                                           monkeypatch):
    tool = _tool('tools/model_converters/publish_model.py')
    out = tmp_path / 'published'
    out.mkdir()
    (out / 'tiny-0123abcd.pth').write_bytes(b'an earlier release')
    seen = _watch_fsync(monkeypatch, out)
    final = tool.publish_checkpoint(
        training_ckpt[0], str(out / 'tiny.pth'), verbose=False)
    # synced once, while only the earlier release was visible
    assert seen == [['tiny-0123abcd.pth']]
    assert sorted(os.listdir(out)) == sorted(
        ['tiny-0123abcd.pth', osp.basename(final)])
    assert (out / 'tiny-0123abcd.pth').read_bytes() == b'an earlier release'
    assert fileio.file_sha256(final)[:8] in osp.basename(final)


def test_publish_model_failed_write_leaves_nothing(training_ckpt, tmp_path,
                                                   monkeypatch):
    tool = _tool('tools/model_converters/publish_model.py')
    out = tmp_path / 'published'
    _fail_fsync(monkeypatch)
    with pytest.raises(OSError, match='disk full'):
        tool.publish_checkpoint(
            training_ckpt[0], str(out / 'tiny.pth'), verbose=False)
    assert os.listdir(out) == []


def test_detect_reconstruct_combined_checkpoint_is_atomic(
        training_ckpt, tmp_path, monkeypatch):
    from mmhand2p.models.reconstructors.detect_reconstruct import \
        merge_part_checkpoints
    out = tmp_path / 'combined'
    out.mkdir()
    target = out / 'hand2p.pth'
    target.write_bytes(b'the previous combined checkpoint')
    _fail_fsync(monkeypatch)
    with pytest.raises(OSError, match='disk full'):
        merge_part_checkpoints(training_ckpt[0], training_ckpt[0], str(target))
    # the failed write left the previous file as it was, and no temporary
    assert os.listdir(out) == ['hand2p.pth']
    assert target.read_bytes() == b'the previous combined checkpoint'
    monkeypatch.undo()
    seen = _watch_fsync(monkeypatch, out)
    assert merge_part_checkpoints(training_ckpt[0], training_ckpt[0],
                                  str(target)) == str(target)
    assert seen == [['hand2p.pth']]  # synced before the rename
    state = torch.load(target, map_location='cpu', weights_only=True)
    assert torch.equal(state['state_dict']['detector.weight'],
                       training_ckpt[1].weight)


def test_make_demo_checkpoints_keeps_the_previous_file_until_complete(
        tmp_path, monkeypatch):
    tool = _tool('tools/misc/make_demo_checkpoints.py')
    state = {'detector.w': torch.ones(4), 'reconstructor.w': torch.zeros(4)}
    # the parts' loading and the strict check are test_make_demo_checkpoints'
    monkeypatch.setattr(tool, 'assemble', lambda *a: dict(state))
    monkeypatch.setattr(tool, 'check_strict', lambda s, c: 8)
    out = tmp_path / 'ckpts' / 'default.pth'
    out.parent.mkdir()
    out.write_bytes(b'the shipped checkpoint')
    argv = [
        '--detector', 'd.pth', '--reconstructor', 'r.pth', '--out',
        str(out)
    ]
    with monkeypatch.context() as m:
        _fail_fsync(m)
        with pytest.raises(OSError, match='disk full'):
            tool.main(argv)
    assert os.listdir(out.parent) == ['default.pth']
    assert out.read_bytes() == b'the shipped checkpoint'
    seen = _watch_fsync(monkeypatch, out.parent)
    assert tool.main(argv) == 0
    assert seen == [['default.pth']]  # synced before the rename
    ckpt = torch.load(out, map_location='cpu', weights_only=True)
    assert ckpt['state_dict']['detector.w'].dtype == torch.float16
    assert torch.equal(ckpt['state_dict']['detector.w'].float(), torch.ones(4))
    assert os.listdir(out.parent) == ['default.pth']
