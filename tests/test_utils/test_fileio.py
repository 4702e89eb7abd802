# Copyright (c) mmhand2p contributors. All rights reserved.
"""atomic_write_json: the one atomic JSON writer (InterHand-format writer,
synthetic set, COCO hand-box converter)."""
import json
import os

import pytest

from mmhand2p.utils.fileio import atomic_write_json


def test_atomic_write_json_writes_and_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / 'sub' / 'a.json'
    atomic_write_json(str(path), dict(a=[1, 2]), separators=(',', ':'))
    assert path.read_text() == '{"a":[1,2]}'
    with pytest.raises(TypeError):  # not serialisable: fails mid-write
        atomic_write_json(str(path), dict(b=object()))
    assert json.loads(path.read_text()) == dict(a=[1, 2])
    assert os.listdir(tmp_path / 'sub') == ['a.json']  # no temporary left
