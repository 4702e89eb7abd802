# Copyright (c) mmhand2p contributors. All rights reserved.
"""RefinerPairMetric (evaluation/) and PenetrationPairsDataset (datasets/):
registered under their old names from their new packages."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmhand2p.conventions.penetration_pairs import load_pairs, write_pairs
from mmhand2p.evaluation import RefinerPairMetric


def _params(n, dx):
    pose = torch.zeros(n, 2, 16, 3)
    betas = torch.zeros(n, 2, 10)
    root = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]]).repeat(n, 1, 1)
    root[:, 1, 0] += dx  # left hand dx metres right of the right hand
    return pose, betas, root


def test_refiner_pair_metric_by_hand():
    metric = RefinerPairMetric(volume_threshold=1e-3)
    n = 2
    gt = _params(n, 0.2)  # far apart: no penetration
    cond = _params(n, 0.0)  # the same place: full overlap
    refined = _params(n, 0.2)
    layer = metric._hands  # builds the MANOLayer through the registry
    _, joints = layer([{0: a, 1: b, 2: c} for a, b, c in zip(*refined)])
    inputs = dict(
        **{f'x0_{k}': v
           for k, v in zip(('pose', 'betas', 'root'), gt)},
        **{f'c_{k}': v
           for k, v in zip(('pose', 'betas', 'root'), cond)})
    preds = [
        dict(mano_pose=refined[0][i], mano_betas=refined[1][i],
             joints_3d=joints[i]) for i in range(n)
    ]
    metric.process(dict(inputs=inputs), preds)
    out = metric.compute_metrics(metric.results)
    assert out['MPJPE_refined'] == pytest.approx(0.0, abs=1e-4)
    assert out['MRRPE_refined'] == pytest.approx(0.0, abs=1e-3)
    assert out['MRRPE_cond'] == pytest.approx(200.0, abs=1e-3)  # 0.2 m
    assert out['MPJPE_cond'] == pytest.approx(0.0, abs=1e-4)  # same poses
    assert out['PenVol_gt'] == 0.0 and out['PenVol_refined'] == 0.0
    assert out['PenVol_cond'] > 10.0  # two identical hands: a whole hand
    assert out['PenRatio_cond'] == 1.0 and out['PenRatio_refined'] == 0.0


def test_pair_file_round_trip(tmp_path):
    n = 3
    rng = np.random.default_rng(0)
    shapes = dict(pose=(2, 16, 3), betas=(2, 10), root=(2, 3))
    arrays = {
        f'{p}_{k}': rng.normal(size=(n, ) + s).astype(np.float32)
        for p in ('x0', 'c') for k, s in shapes.items()
    }
    arrays['kind'] = np.array([0, 1, 0], np.uint8)
    enc = np.arange(6, dtype=np.float64).reshape(n, 2)
    write_pairs(str(tmp_path / 'p.npz'), arrays, dict(a=1), enc)
    back = load_pairs(str(tmp_path / 'p.npz'))
    np.testing.assert_array_equal(back['c_root'], arrays['c_root'])
    np.testing.assert_array_equal(back['stats_sum'], [6.0, 9.0])
    np.testing.assert_array_equal(back['stats_sqsum'], [20.0, 35.0])
    assert back['meta'] == dict(a=1) and int(back['stats_count']) == 3
    bad = dict(arrays, c_root=arrays['c_root'][:, :1])
    with pytest.raises(ValueError, match='c_root must be'):
        write_pairs(str(tmp_path / 'q.npz'), bad, {}, enc)


def test_old_type_names_register_lazily():
    # a fresh process: the registries find both classes in their new
    # packages through their lazy locations (configs keep working)
    code = (
        'from mmhand2p.registry import DATASETS, METRICS\n'
        'from mmhand2p.utils import register_all_modules\n'
        'print(DATASETS.get("PenetrationPairsDataset").__module__)\n'
        'print(METRICS.get("RefinerPairMetric").__module__)\n')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         check=True).stdout.split()
    assert out == [
        'mmhand2p.datasets.penetration_pairs',
        'mmhand2p.evaluation.metrics.refiner_pair_metric'
    ]
