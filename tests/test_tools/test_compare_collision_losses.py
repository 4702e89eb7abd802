# Copyright (c) mmhand2p contributors. All rights reserved.
"""Smoke run of tools/analysis_tools/compare_collision_losses.py: two
penetrating pairs, two steps; the table is finite and the default
criterion reduces the exact PenVol."""
import importlib.util
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch

from mmhand2p.conventions.penetration_pairs import write_pairs

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis_tools',
                'compare_collision_losses.py')


def _tool():
    spec = importlib.util.spec_from_file_location('compare_collision', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def pair_file(tmp_path_factory):
    """Three pairs of rest hands, the left one pushed into the right one
    (its centroid 36, 34 and 20 mm above along y)."""
    from mmhand2p.models.body_models import MANOLayer
    mano = MANOLayer()
    offsets = torch.tensor([[0.0, 0.036, 0.0], [0.0, 0.034, 0.0],
                            [0.0, 0.020, 0.0]])
    n = len(offsets)
    pose = torch.zeros(n, 2, 16, 3)
    betas = torch.zeros(n, 2, 10)
    with torch.no_grad():
        v = mano(pose=pose).vertices
        transl = torch.zeros(n, 2, 3)
        transl[:, 1] = v[:, 0].mean(1) - v[:, 1].mean(1) + offsets
        root = mano(pose=pose, transl=transl).joints[:, :, 0]
    arrays = dict(
        x0_pose=pose.numpy(),
        x0_betas=betas.numpy(),
        x0_root=root.numpy(),
        c_pose=pose.numpy(),
        c_betas=betas.numpy(),
        c_root=root.numpy(),
        kind=np.zeros(n, np.uint8),
        level=np.ones(n, np.int16),
        c_volume=np.ones(n, np.float32),
        x0_volume=np.zeros(n, np.float32),
        source_index=np.arange(10, 10 + n))
    path = str(tmp_path_factory.mktemp('pairs') / 'p.npz')
    write_pairs(path, arrays, dict(kind='test'), np.zeros((n, 1)))
    return path


def test_two_pairs_two_steps(pair_file, tmp_path, capsys):
    tool = _tool()
    out = str(tmp_path / 'table.json')
    assert tool.main([
        pair_file, '--num-pairs', '2', '--steps', '2', '--out', out
    ]) == 0
    with open(out) as f:
        table = json.load(f)
    # the first two pairs of the file, in file order
    assert table['source_index'] == [10, 11]
    assert table['settings']['eq3_rho'] == pytest.approx(0.005**2)
    for key in ('before', ) + tool.CRITERIA:
        assert len(table[key]) == 2
        assert all(math.isfinite(x) and x >= 0 for x in table[key])
    before = np.asarray(table['before'])
    assert (before > 0).all()
    assert before[0] < before[1]  # pushed 2 mm further in
    default = np.asarray(table['depth_gmof'])
    assert (default < before).all()
    text = capsys.readouterr().out
    assert '| mean |' in text and 'depth_gmof' in text
    # an unknown criterion is refused
    assert tool.main([pair_file, '--criteria', 'bogus']) == 2
