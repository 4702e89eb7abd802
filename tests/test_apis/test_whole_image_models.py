# Copyright (c) mmhand2p contributors. All rights reserved.
"""Any registered whole-image model runs through ``Hand2PInferencer`` and
``demo/image_demo.py`` unchanged: a toy one-stage model that writes only
``pred_hands`` (0, 1 or 2 hands; no detector, no ``pred_instances``, no
``stage_times_ms``), and a visualizer swapped by the config;
``tools/test.py`` runs the same model unchanged."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from _apis_helpers import REPO, load_module
from _toy_whole_image import TOY_OVERLAY_RGB, TRANSL, template

from mmhand2p.apis import Hand2PInferencer, validate_result
from mmhand2p.apis.io import read_obj

H, W = 96, 128


def _write_config(path, visualizer=None):
    lines = [
        "default_scope = 'mmhand2p'",
        "custom_imports = dict(imports=['_toy_whole_image'], "
        'allow_failed_imports=False)',
        "model = dict(type='ToyWholeImageModel', score=0.75)",
    ]
    if visualizer is not None:
        lines.append(f'visualizer = {visualizer!r}')
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


@pytest.fixture(scope='module')
def toy_inputs(tmp_path_factory):
    """Images with both hands, only the right hand and none."""
    root = tmp_path_factory.mktemp('toy_whole_image')
    folder = root / 'images'
    folder.mkdir()
    both = np.full((H, W, 3), 200, np.uint8)
    right = both.copy()
    right[:, W // 2:] = 20
    none = np.full((H, W, 3), 20, np.uint8)
    for name, img in (('a_both', both), ('b_right', right), ('c_none',
                                                             none)):
        cv2.imwrite(str(folder / f'{name}.png'), img)
    return dict(
        config=_write_config(root / 'toy_whole_image.py'),
        folder=str(folder),
        root=root)


def test_inferencer_runs_a_one_stage_model(toy_inputs, tmp_path):
    inferencer = Hand2PInferencer(toy_inputs['config'], show_progress=False)
    out_dir = str(tmp_path / 'out')
    result = inferencer(
        toy_inputs['folder'], out_dir=out_dir, return_vis=True)
    assert result['errors'] == []
    preds = {p['image']['name']: p for p in result['predictions']}
    assert sorted(preds) == ['a_both', 'b_right', 'c_none']
    for pred in preds.values():
        validate_result(pred)
        # no stage_times_ms: the whole model call is the reconstruction
        assert pred['timing_ms']['detector'] is None
        assert pred['timing_ms']['refinement'] is None
        assert pred['timing_ms']['reconstruction'] > 0
        assert pred['camera']['assumed']
        assert pred['camera']['intrinsics'][0][0] == float(W)
    assert [h['handedness']
            for h in preds['a_both']['hands']] == ['right', 'left']
    assert [h['handedness'] for h in preds['b_right']['hands']] == ['right']
    assert preds['c_none']['hands'] == [] and preds['c_none']['pairs'] == []
    tmpl = template()
    rel = (tmpl[1, 0] + TRANSL[1]) - (tmpl[0, 0] + TRANSL[0])
    (pair, ) = preds['a_both']['pairs']
    assert (pair['right'], pair['left']) == (0, 1)
    assert pair['score'] == pytest.approx(0.75)
    np.testing.assert_allclose(pair['rel_transl'], rel, atol=2e-6)
    assert preds['b_right']['pairs'] == [
        dict(right=0, left=None, score=0.75, rel_transl=None)
    ]
    # the box of a hand without bboxes is the box of its 2D joints
    hand = preds['b_right']['hands'][0]
    j2d = np.asarray(hand['joints_2d'])
    np.testing.assert_allclose(
        hand['bbox'], np.r_[j2d.min(0), j2d.max(0)], atol=0.011)
    # meshes: the model's vertices with the visualizer's (bundled) faces
    v, f = read_obj(osp.join(out_dir, 'a_both_hand1_left.obj'))
    np.testing.assert_allclose(v, tmpl[1] + TRANSL[1], atol=1e-5)
    np.testing.assert_array_equal(f, inferencer.visualizer.faces[1])
    assert sorted(os.listdir(out_dir)) == sorted([
        'a_both.json', 'a_both_hand0_right.obj', 'a_both_hand1_left.obj',
        'a_both_overlay.jpg', 'a_both_side.jpg', 'b_right.json',
        'b_right_hand0_right.obj', 'b_right_overlay.jpg', 'b_right_side.jpg',
        'c_none.json', 'c_none_overlay.jpg', 'c_none_side.jpg'
    ])
    # pictures: meshes drawn where hands were found, none elsewhere
    vis = {
        p['image']['name']: v
        for p, v in zip(result['predictions'], result['visualization'])
    }
    none = vis['c_none']
    assert (none['overlay'] == 20).all()
    both = vis['a_both']
    assert both['overlay'].shape == (H, W, 3)
    assert (both['overlay'] != 200).any(-1).sum() > 100
    white = (both['side'] == 255).all(-1)
    assert (~white).sum() > 100


def test_demo_runs_a_one_stage_model(toy_inputs, tmp_path, capsys):
    demo = load_module('demo/image_demo.py', 'image_demo_toy')
    out_dir = str(tmp_path / 'demo')
    code = demo.main([
        toy_inputs['folder'], '--config', toy_inputs['config'], '--out-dir',
        out_dir
    ])
    printed = capsys.readouterr().out
    assert code == demo.EXIT_OK, printed
    assert 'a_both: 2 hand(s) [right 0.75, left 0.75] in 1 pair(s)' in printed
    assert 'c_none: no hands found' in printed
    assert 'detector - |' in printed
    with open(osp.join(out_dir, 'b_right.json')) as f:
        pred = json.load(f)
    validate_result(pred)
    assert [h['mesh_file'] for h in pred['hands']] == \
        ['b_right_hand0_right.obj']


def test_visualizer_swapped_by_config(toy_inputs, tmp_path):
    config = _write_config(
        tmp_path / 'toy_vis.py', dict(type='ToyPanelVisualizer'))
    inferencer = Hand2PInferencer(config, show_progress=False)
    assert type(inferencer.visualizer).__name__ == 'ToyPanelVisualizer'
    result = inferencer(
        osp.join(toy_inputs['folder'], 'a_both.png'), return_vis=True)
    (vis, ) = result['visualization']
    assert (vis['overlay'] == TOY_OVERLAY_RGB).all()
    # an instance given to the inferencer is used as it is
    other = Hand2PInferencer(
        config, show_progress=False, visualizer=inferencer.visualizer)
    assert other.visualizer is inferencer.visualizer


TOOLS_TEST_CONFIG = """\
_base_ = [{base!r}]
custom_imports = dict(
    imports=['_toy_whole_image', '_toy_components', 'mmhand2p.engine'],
    allow_failed_imports=False)
model = dict(type='ToyWholeImageModel')
test_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyTwoHandDataset', num_samples=6))
test_evaluator = dict(type='ToyHandCount')
test_cfg = dict()
default_hooks = dict(
    visualization=dict(type='TwoHandVisualizationHook', interval=1))
"""


def test_tools_test_runs_a_one_stage_model(tmp_path):
    """tools/test.py: the toy model on the tools tests' toy dataset (32 x 32
    images with their cameras), its metric and the visualization hook."""
    here = osp.dirname(osp.abspath(__file__))
    toy_tools = osp.join(REPO, 'tests', 'test_tools')
    sys.path.insert(0, toy_tools)
    try:
        from _toy_components import ToyTwoHandDataset
    finally:
        sys.path.remove(toy_tools)
    from _toy_whole_image import ToyWholeImageModel
    model = ToyWholeImageModel().eval()
    expected = 0.0
    dataset = ToyTwoHandDataset(num_samples=6)
    for i in range(len(dataset)):  # (no IndexError to end a for loop)
        item = dataset[i]
        with torch.no_grad():
            (out, ) = model.test_step(
                dict(
                    inputs=[item['inputs']],
                    data_samples=[item['data_samples']]))
        expected += float(out.pred_hands.hand_valid.sum())
    assert 0 < expected < 12  # some images with and some without hands
    config = tmp_path / 'toy_whole_image_test.py'
    config.write_text(
        TOOLS_TEST_CONFIG.format(
            base=osp.join(REPO, 'configs', '_base_', 'default_runtime.py')))
    checkpoint = tmp_path / 'toy.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (here, toy_tools, REPO, env.get('PYTHONPATH')) if p)
    work_dir = tmp_path / 'work'
    res = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'),
        str(config),
        str(checkpoint), '--work-dir',
        str(work_dir)
    ],
                         cwd=str(tmp_path),
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert f'toy_whole/hands: {expected:.4f}' in log, log[-2000:]
    drawn = sorted(os.listdir(work_dir / 'vis'))
    assert drawn == ['000000_toy_000.png', '000001_toy_002.png',
                     '000002_toy_004.png']
