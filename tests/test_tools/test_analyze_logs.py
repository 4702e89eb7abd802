# Copyright (c) mmhand2p contributors. All rights reserved.
"""tools/analysis_tools/analyze_logs.py on hand-written scalars.json logs."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

TOOL = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'analysis_tools', 'analyze_logs.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('analyze_logs_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(work_dir, stamp, losses, val_every, mpjpe):
    """A work dir as tools/train.py leaves it: training records every 10
    iterations, a validation record (mmengine's step 0) every
    ``val_every``."""
    d = osp.join(work_dir, stamp, 'vis_data')
    os.makedirs(d)
    with open(osp.join(d, 'scalars.json'), 'w') as f:
        for i, loss in enumerate(losses, 1):
            it = 10 * i
            f.write(json.dumps(dict(loss=loss, time=0.5 + 0.01 * i, iter=it,
                                    step=it)) + '\n')
            if it % val_every == 0:
                f.write(json.dumps({
                    'two_hand/MPJPE_all': mpjpe[it // val_every - 1],
                    'step': 0
                }) + '\n')
    return d


def test_validation_records_take_the_preceding_iteration(tool, tmp_path):
    d = _write_run(str(tmp_path / 'run'), '20260101_000000', [3, 2, 1, 1],
                   20, [90.0, 70.0])
    train, val = tool.load_scalars(tool.find_scalars(str(tmp_path / 'run')))
    assert [r['x'] for r in train] == [10, 20, 30, 40]
    assert [(r['x'], r['two_hand/MPJPE_all'])
            for r in val] == [(20, 90.0), (40, 70.0)]
    # the newest timestamp folder wins; a file or timestamp folder works too
    _write_run(str(tmp_path / 'run'), '20260102_000000', [5], 10, [1.0])
    newest = tool.find_scalars(str(tmp_path / 'run'))
    assert '20260102_000000' in newest
    assert tool.find_scalars(osp.dirname(d)) == osp.join(d, 'scalars.json')


def test_smooth_is_a_trailing_mean(tool):
    y = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(tool.smooth(y, 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(tool.smooth(y, 1), y)


def test_plot_curve_and_train_time(tool, tmp_path, capsys):
    a = _write_run(str(tmp_path / 'a'), 't', [3, 2, 1, 1], 20, [90, 70])
    b = _write_run(str(tmp_path / 'b'), 't', [4, 3], 20, [95])
    out = str(tmp_path / 'fig' / 'curves.png')
    rc = tool.main([
        'plot_curve', a, b, '--keys', 'loss',
        'two_hand/MPJPE_all', '--legend', 'A', 'B', '--out', out
    ])
    assert rc == 0
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    printed = capsys.readouterr().out
    assert 'loss: A 4 points, B 2 points' in printed
    assert 'two_hand/MPJPE_all: A 2 points, B 1 points' in printed
    assert os.listdir(osp.dirname(out)) == ['curves.png']  # no temp left

    s = tool.train_time(str(tmp_path / 'a'))
    assert s['last_iter'] == 40
    assert s['mean_s_per_iter'] == pytest.approx(0.525)
    assert s['slowest_window_s_per_iter'] == pytest.approx(0.54)


def test_bad_input_is_named_and_writes_nothing(tool, tmp_path, capsys):
    a = _write_run(str(tmp_path / 'a'), 't', [3, 2], 20, [90])
    out = str(tmp_path / 'x.png')
    assert tool.main(['plot_curve', a, '--keys', 'nope', '--out', out]) == 1
    err = capsys.readouterr().err
    assert "no run logged 'nope'" in err and 'two_hand/MPJPE_all' in err
    assert tool.main(
        ['plot_curve', str(tmp_path / 'missing'), '--out', out]) == 1
    assert str(tmp_path / 'missing') in capsys.readouterr().err
    bad = tmp_path / 'bad.json'
    bad.write_text('{"loss": 1, "iter": 1}\n{oops\n')
    assert tool.main(['plot_curve', str(bad), '--out', out]) == 1
    assert f'{bad}:2' in capsys.readouterr().err
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.png')]
