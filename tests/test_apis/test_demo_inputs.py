# Copyright (c) mmhand2p contributors. All rights reserved.
"""The demo and the inferencer refuse bad options before any work (exit
code 2, messages that say what is allowed), and write outputs for images
with non-ASCII names."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from _apis_helpers import forced_detect, image_key, load_module

from mmhand2p.apis import Hand2PInferencer, load_image, validate_result
from mmhand2p.apis.io import check_out_dir, read_obj, write_obj


@pytest.fixture(scope='module')
def demo():
    return load_module('demo/image_demo.py', 'image_demo')


@pytest.fixture
def no_model(monkeypatch):
    """Make building the model fail loudly: a check that happens after it
    would show up as this error instead of the expected one."""
    import mmhand2p.apis

    def refuse(*args, **kwargs):
        raise AssertionError('the model was built before the check')

    monkeypatch.setattr(mmhand2p.apis, 'Hand2PInferencer', refuse)


@pytest.mark.parametrize('option, message', [
    (['--intrinsics', '0', '0', '0', '0'], 'FX and FY must be > 0'),
    (['--intrinsics', '500', '-1', '320', '240'], 'FY=-1'),
    (['--intrinsics', 'nan', '500', '320', '240'], 'must be finite'),
    (['--intrinsics', '500', '500', 'inf', '240'], 'must be finite'),
    (['--det-score-thr', '5'], '--det-score-thr must be a detection score '
     'in [0, 1], got 5'), (['--det-score-thr', '-1'], 'in [0, 1], got -1'),
    (['--det-score-thr', 'nan'], 'in [0, 1], got nan'),
    (['--max-vis-size', '-5'], '--max-vis-size must be >= 0'),
    (['--batch-size', '0'], '--batch-size must be >= 1')
])
def test_bad_numeric_options_exit_2(demo, no_model, tmp_path, capsys, option,
                                    message):
    with pytest.raises(SystemExit) as info:
        demo.main(['x.jpg', '--out-dir', str(tmp_path / 'out')] + option)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and 'usage:' in err
    assert not osp.exists(tmp_path / 'out')


def test_good_edge_values_are_accepted(demo):
    args = demo.parse_args(
        ['--det-score-thr', '0', '--intrinsics', '1', '1', '-5', '0'])
    assert args.det_score_thr == 0.0 and args.intrinsics[0] == 1.0
    assert demo.parse_args(['--det-score-thr', '1']).det_score_thr == 1.0
    assert demo.parse_args(['--max-vis-size', '0']).max_vis_size == 0


def test_bad_out_dir_exit_2_before_the_model(demo, no_model, tiny_model_files,
                                             samples, tmp_path, capsys):
    config, checkpoint = tiny_model_files
    a_file = tmp_path / 'a_file'
    a_file.write_text('not a folder')
    if os.geteuid() == 0:  # root writes anywhere but in /proc
        unwritable = '/proc/1/mmhand2p_out'
    else:
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o555)
        unwritable = str(locked / 'out')
    cases = [(str(a_file), 'is a file'),
             (str(a_file / 'sub'), f'{str(a_file)!r} is a file, not a folder'),
             (unwritable, 'cannot write into')]
    for out_dir, message in cases:
        code = demo.main([
            samples['two']['path'], '--config', config, '--checkpoint',
            checkpoint, '--out-dir', out_dir
        ])
        err = capsys.readouterr().err
        assert code == demo.EXIT_SETUP, out_dir
        assert err.startswith('error: --out-dir: ') and message in err, err
        assert len(err.strip().splitlines()) == 1
    assert a_file.read_text() == 'not a folder'
    # a folder that does not exist yet is fine, and is not created by the
    # check (no empty folders are left when a later step fails)
    fresh = tmp_path / 'new' / 'deeper'
    assert check_out_dir(str(fresh)) == str(fresh)
    assert not osp.exists(tmp_path / 'new')
    # the probe files were removed
    left = {'a_file'} | (set() if os.geteuid() == 0 else {'locked'})
    assert set(os.listdir(tmp_path)) == left


def test_bad_device_exit_2(demo, no_model, tiny_model_files, samples, tmp_path,
                           capsys):
    config, checkpoint = tiny_model_files
    code = demo.main([
        samples['two']['path'], '--config', config, '--checkpoint', checkpoint,
        '--out-dir',
        str(tmp_path), '--device', 'gpu7'
    ])
    assert code == demo.EXIT_SETUP
    assert "--device 'gpu7' is not a device" in capsys.readouterr().err


def test_inferencer_checks_options_before_work(tiny_model_files, samples,
                                               tmp_path, monkeypatch):
    config, checkpoint = tiny_model_files
    for kwargs, message in ((dict(det_score_thr=5), r'in \[0, 1\].*got 5'),
                            (dict(det_score_thr=-0.1), 'got -0.1'),
                            (dict(batch_size=0), 'batch_size must be'),
                            (dict(batch_size=1.5), 'batch_size must be'),
                            (dict(max_vis_size=-1), 'max_vis_size must be')):
        with pytest.raises(ValueError, match=message):
            Hand2PInferencer(config, checkpoint, show_progress=False, **kwargs)
    inferencer = Hand2PInferencer(config, checkpoint, show_progress=False)

    def no_work(*args, **kwargs):
        raise AssertionError('the model ran before the check')

    monkeypatch.setattr(inferencer.model, 'test_step', no_work)
    image = samples['two']['path']
    bad_k = [
        (np.zeros((3, 3)), 'fx = 0 and fy = 0'),
        (np.diag([500.0, 500.0, 1.0]) * np.nan, 'must be finite'),
        (np.eye(2), r'must be a \(3, 3\) matrix'),
        (np.array([[500.0, 0, 320], [0, 500, 240],
                   [0, 0, 0]]), 'must be \\[\\[fx, s, cx\\]'),
    ]
    for k, message in bad_k:
        with pytest.raises(ValueError, match=message):
            inferencer.iterate(image, cam_intrinsics=k)  # raises at the call
        with pytest.raises(ValueError, match=message):
            inferencer(image, cam_intrinsics=k, skip_errors=True)
    a_file = tmp_path / 'f'
    a_file.write_text('x')
    with pytest.raises(ValueError, match='is a file'):
        inferencer.iterate(image, out_dir=str(a_file))
    with pytest.raises(ValueError, match='is a file'):
        inferencer(image, out_dir=str(a_file), skip_errors=True)


def test_write_obj_non_ascii_header(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.5]])
    f = np.array([[0, 1, 2]])
    for name in ('hände', '両手の写真'):
        path = str(tmp_path / f'{name}.obj')
        write_obj(path, v, f, comment=f'mmhand2p: {name} hand 0 (right)')
        with open(path, encoding='utf-8') as fh:
            assert fh.readline() == f'# mmhand2p: {name} hand 0 (right)\n'
        v2, f2 = read_obj(path)
        np.testing.assert_allclose(v2, v)
        np.testing.assert_array_equal(f2, f)


def test_demo_non_ascii_names_end_to_end(demo, tiny_model_files, samples,
                                         tmp_path, monkeypatch, capsys):
    from mmhand2p.models.reconstructors import DetectThenReconstruct
    config, checkpoint = tiny_model_files
    info = samples['two']
    table = {
        image_key(load_image(info['path'])): (info['bboxes'], info['labels'])
    }
    detect = forced_detect(table)
    monkeypatch.setattr(DetectThenReconstruct, 'detect',
                        lambda self, images: detect(images))
    names = ['hände', '両手の写真']
    inputs = []
    for name in names:
        inputs.append(str(tmp_path / f'{name}.jpg'))
        shutil.copy(info['path'], inputs[-1])
    out_dir = tmp_path / 'ausgabe_出力'
    code = demo.main(inputs + [
        '--config', config, '--checkpoint', checkpoint, '--out-dir',
        str(out_dir), '--no-side-view', '--max-vis-size', '160'
    ])
    captured = capsys.readouterr()
    assert code == demo.EXIT_OK, captured.err
    assert '2 image(s) processed, 0 failed' in captured.out
    expected = []
    for name in names:
        expected += [
            f'{name}.json', f'{name}_hand0_right.obj',
            f'{name}_hand1_left.obj', f'{name}_overlay.jpg'
        ]
        assert f'{name}: 2 hand(s)' in captured.out
        with open(out_dir / f'{name}.json', encoding='utf-8') as fh:
            result = json.load(fh)
        validate_result(result)
        assert result['image']['name'] == name
        assert result['image']['path'] == str(tmp_path / f'{name}.jpg')
        assert result['hands'][1]['mesh_file'] == f'{name}_hand1_left.obj'
        obj = out_dir / f'{name}_hand1_left.obj'
        with open(obj, encoding='utf-8') as fh:
            assert fh.readline().startswith(f'# mmhand2p: {name} hand 1 (')
        verts, faces = read_obj(str(obj))
        assert verts.shape == (778, 3) and faces.shape == (1538, 3)
        assert np.isfinite(verts).all()
    assert sorted(os.listdir(out_dir)) == sorted(expected)
