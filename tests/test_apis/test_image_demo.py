# Copyright (c) mmhand2p contributors. All rights reserved.
"""demo/image_demo.py (argparse, defaults, outputs, exit codes) and
tools/misc/make_demo_sample.py."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from _apis_helpers import REPO, forced_detect, image_key, load_module

from mmhand2p.apis import load_image, validate_result


@pytest.fixture(scope='module')
def demo():
    return load_module('demo/image_demo.py', 'image_demo')


def test_parse_args_defaults(demo):
    args = demo.parse_args([])
    assert args.inputs == [] and args.config is None and \
        args.checkpoint is None
    assert (args.device, args.out_dir, args.batch_size) == ('cpu',
                                                            'outputs/demo', 1)
    assert not (args.no_refine or args.no_side_view or args.no_mesh)
    assert args.det_score_thr is None and args.intrinsics is None
    args = demo.parse_args([
        'a.jpg', 'b/', '--no-refine', '--det-score-thr', '0.5',
        '--no-side-view', '--no-mesh', '--batch-size', '4', '--intrinsics',
        '500', '510', '320', '240'
    ])
    assert args.inputs == ['a.jpg', 'b/'] and args.no_refine
    assert args.det_score_thr == 0.5 and args.batch_size == 4
    assert args.intrinsics == [500.0, 510.0, 320.0, 240.0]
    with pytest.raises(SystemExit):
        demo.parse_args(['--batch-size', '0'])


def test_defaults_resolve_from_the_repo_root(demo, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # any cwd
    assert demo.REPO_ROOT == REPO
    # the shipped sample photo is there
    assert osp.isfile(osp.join(REPO, demo.DEFAULT_INPUT))
    # a missing default gives a message and exit code 2
    monkeypatch.setattr(demo, 'DEFAULT_CONFIG', 'configs/nope.py')
    assert demo.main([]) == demo.EXIT_SETUP
    monkeypatch.setattr(demo, 'DEFAULT_INPUT', 'demo/resources/nope.jpg')
    assert demo.main([]) == demo.EXIT_SETUP


def test_missing_config_or_checkpoint(demo, tiny_model_files, tmp_path,
                                      capsys):
    config, _ = tiny_model_files
    assert demo.main(['x.jpg', '--config', str(tmp_path / 'c.py')]) == 2
    assert 'c.py' in capsys.readouterr().err
    assert demo.main(
        ['x.jpg', '--config', config, '--checkpoint',
         str(tmp_path / 'w.pth')]) == 2
    assert 'w.pth' in capsys.readouterr().err


def test_main_writes_outputs_and_reports_failures(demo, tiny_model_files,
                                                  samples, tmp_path,
                                                  monkeypatch, capsys):
    from mmhand2p.models.reconstructors import DetectThenReconstruct
    config, checkpoint = tiny_model_files
    info = samples['two']
    table = {
        image_key(load_image(info['path'])): (info['bboxes'], info['labels'])
    }
    detect = forced_detect(table)
    monkeypatch.setattr(DetectThenReconstruct, 'detect',
                        lambda self, images: detect(images))
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8 not really a jpeg')
    out_dir = tmp_path / 'out'
    code = demo.main([
        info['path'],
        str(bad), '--config', config, '--checkpoint', checkpoint, '--out-dir',
        str(out_dir), '--no-side-view', '--intrinsics', '700', '700', '320',
        '240', '--max-vis-size', '320'
    ])
    captured = capsys.readouterr()
    assert code == demo.EXIT_IMAGE_FAILED
    assert 'FAILED' in captured.err and 'broken.jpg' in captured.err
    assert 'two: 2 hand(s) [right 0.90, left 0.80] in 1 pair(s)' in \
        captured.out
    assert 'timing (ms): detector' in captured.out
    assert '1 image(s) processed, 1 failed' in captured.out
    assert sorted(os.listdir(out_dir)) == [
        'two.json', 'two_hand0_right.obj', 'two_hand1_left.obj',
        'two_overlay.jpg'
    ]
    with open(out_dir / 'two.json') as f:
        result = json.load(f)
    validate_result(result)
    assert result['camera'] == dict(
        intrinsics=[[700.0, 0.0, 320.0], [0.0, 700.0, 240.0], [0.0, 0.0, 1.0]],
        assumed=False)
    assert cv2.imread(str(out_dir / 'two_overlay.jpg')).shape == (240, 320, 3)
    # all good: exit code 0, no meshes with --no-mesh
    code = demo.main([
        info['path'], '--config', config, '--checkpoint', checkpoint,
        '--out-dir',
        str(tmp_path / 'out2'), '--no-mesh', '--no-refine', '--max-vis-size',
        '320'
    ])
    assert code == demo.EXIT_OK
    assert sorted(os.listdir(
        tmp_path / 'out2')) == ['two.json', 'two_overlay.jpg', 'two_side.jpg']
    assert 'camera assumed' in capsys.readouterr().out


# ---------------------------------------------------------------------------
def test_make_demo_sample(samples, tmp_path):
    tool = load_module('tools/misc/make_demo_sample.py', 'make_demo_sample')
    two = samples['two']
    img = cv2.imread(two['path'])
    assert img.shape == (480, 640, 3)
    assert two['labels'].tolist() == [0, 1]
    boxes = two['bboxes']
    assert ((boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0
            and (boxes[:, [2]] <= 640).all() and (boxes[:, [3]] <= 480).all())
    # deterministic by seed: the shipped file is this tool's default output
    shipped = cv2.imread(
        osp.join(REPO, 'demo', 'resources', 'sample_two_hands.jpg'))
    assert shipped is not None and shipped.shape == (480, 640, 3)
    assert osp.getsize(
        osp.join(REPO, 'demo', 'resources',
                 'sample_two_hands.jpg')) < 200 * 1024
    assert tool.DEFAULT_SEED == 0
    assert np.abs(shipped.astype(int) - img).mean() < 1.0
    # a one-hand and a no-hand sample
    assert samples['right']['labels'].tolist() == [0]
    assert len(samples['none']['labels']) == 0
    with pytest.raises(ValueError, match='hands must be one of'):
        tool.make_sample(str(tmp_path / 'x.jpg'), 'three')
    assert tool.main(['--hands', 'none', '--out',
                      str(tmp_path / 'n.jpg')]) == 0
    assert cv2.imread(str(tmp_path / 'n.jpg')).shape == (480, 640, 3)
