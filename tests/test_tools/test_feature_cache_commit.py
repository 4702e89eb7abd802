# Copyright (c) mmhand2p contributors. All rights reserved.
"""The prior feature cache (written by tools/misc/extract_prior_features.py)
survives a kill in the middle of replacing it (issue 12, item 1): the
writer's two renames (old cache aside, new one into place) leave no cache
at ``root`` for a moment, and the next reader or writer puts the complete
one back."""
import json
import os

import numpy as np
import pytest

from mmhand2p.utils import feature_cache as fc
from mmhand2p.utils.feature_cache import (PriorFeatureCache,
                                          PriorFeatureCacheWriter)


class _Killed(BaseException):
    """Stands for SIGKILL: no ``except`` / ``with`` cleanup runs (the
    writer is used without ``with`` and the test catches this)."""


def _writer(root, value, overwrite=False):
    w = PriorFeatureCacheWriter(
        str(root), 2, ['depth'], {'depth': (1, 2, 2)}, 1, overwrite=overwrite)
    w.write([0, 1], 0, {'depth': np.full((2, 1, 2, 2), value)},
            np.tile(np.eye(2, 3), (2, 1, 1)), [10, 11], ['a.png', 'b.png'])
    return w


def _meta(tag):
    return dict(
        input_size=[8, 8], feature_shapes={'depth': [1, 2, 2]}, tag=tag)


def _kill_between_renames(monkeypatch):
    """The commit's second rename (new cache -> root) never happens."""
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise _Killed
        real_rename(src, dst)

    monkeypatch.setattr(fc.os, 'rename', rename)
    return calls


@pytest.mark.parametrize('opened_by', ['reader', 'writer'])
def test_kill_between_the_renames_keeps_the_new_cache(tmp_path, monkeypatch,
                                                      opened_by):
    root = tmp_path / 'cache'
    _writer(root, 1.0).commit(_meta('old'))
    w = _writer(root, 2.0, overwrite=True)
    calls = _kill_between_renames(monkeypatch)
    with pytest.raises(_Killed):
        w.commit(_meta('new'))
    monkeypatch.undo()
    assert calls[0][0] == str(root) and calls[1][1] == str(root)
    # the moment of the kill: no cache at root, both complete aside
    assert not root.exists()
    assert len(os.listdir(tmp_path)) == 2
    if opened_by == 'reader':
        cache = PriorFeatureCache(str(root))
        assert cache.index['tag'] == 'new'
    else:
        _writer(tmp_path / 'cache', 3.0, overwrite=True).abort()
    assert sorted(os.listdir(tmp_path)) == ['cache']
    with open(root / 'index.json') as f:
        assert json.load(f)['tag'] == 'new'
    feats = np.load(root / 'depth.npy')
    assert feats.dtype == np.float16 and (feats == 2.0).all()


def test_only_the_old_cache_left_is_put_back(tmp_path):
    root = tmp_path / 'cache'
    _writer(root, 1.0).commit(_meta('old'))
    # what a kill leaves when the new folder never got its index.json
    os.rename(root, tmp_path / '.cache.tmp-999999999.old')
    (tmp_path / '.cache.tmp-999999999').mkdir()
    cache = PriorFeatureCache(str(root))
    assert cache.index['tag'] == 'old'
    assert (tmp_path / '.cache.tmp-999999999').is_dir()  # incomplete: kept
    # and the next writer removes the incomplete one
    _writer(root, 2.0, overwrite=True).abort()
    assert sorted(os.listdir(tmp_path)) == ['cache']


def test_commit_syncs_every_file_before_the_index(tmp_path, monkeypatch):
    """The small files go through fileio.atomic_write (flush, fsync,
    rename), index.json last."""
    written = []
    real_atomic_write = fc.atomic_write

    def spy(path, mode='wb'):
        written.append(os.path.basename(path))
        return real_atomic_write(path, mode)

    monkeypatch.setattr(fc, 'atomic_write', spy)
    _writer(tmp_path / 'cache', 1.0).commit(_meta('x'))
    assert written == [
        'crop_affine.npy', 'img_ids.npy', 'img_paths.txt', 'index.json'
    ]
