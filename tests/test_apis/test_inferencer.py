# Copyright (c) mmhand2p contributors. All rights reserved.
"""init_model, inference_image and Hand2PInferencer on the real
``DetectThenReconstruct`` (tiny random weights) with its detector step forced
to return the hand boxes of synthetic photos."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from _apis_helpers import forced_detect, image_key

from mmhand2p.apis import Hand2PInferencer, inference_image
from mmhand2p.apis import inferencer as inferencer_module
from mmhand2p.apis import init_model, load_image, validate_result
from mmhand2p.apis.io import read_obj
from mmhand2p.utils.mesh import cap_boundary_loops, signed_volume

VIS = 320  # pictures of the 640 x 480 photos are drawn at 320 x 240


def _small(image):
    return cv2.resize(image, (VIS, VIS * 3 // 4), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module')
def table(samples):
    """image key -> forced (boxes, labels) of the sample photos."""
    return {
        image_key(load_image(info['path'])): (info['bboxes'], info['labels'])
        for info in samples.values()
    }


@pytest.fixture(scope='module')
def inferencer(tiny_model_files):
    config, checkpoint = tiny_model_files
    # small pictures: the renderer's time grows with the pixels drawn
    return Hand2PInferencer(
        config, checkpoint, show_progress=False, max_vis_size=VIS)


@pytest.fixture
def forced(inferencer, table, monkeypatch):
    monkeypatch.setattr(inferencer.model, 'detect', forced_detect(table))
    return inferencer


def _outputs(out_dir, stem):
    return sorted(f for f in os.listdir(out_dir) if f.startswith(stem))


# ---------------------------------------------------------------------------
def test_init_model_missing_files(tiny_model_files, tmp_path):
    config, checkpoint = tiny_model_files
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        init_model(str(tmp_path / 'no_such_config.py'))
    with pytest.raises(FileNotFoundError, match='no_such.pth'):
        init_model(config, str(tmp_path / 'no_such.pth'))


def test_init_model_loads_weights_and_keeps_scope(tiny_model_files):
    from mmengine.registry import DefaultScope
    config, checkpoint = tiny_model_files
    model = init_model(config, checkpoint)
    assert not model.training and model.cfg.model.type == \
        'DetectThenReconstruct'
    assert DefaultScope.get_current_instance().scope_name == 'mmhand2p'
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    state = model.state_dict()
    assert set(saved) <= set(state)
    assert all(torch.equal(state[k], v) for k, v in saved.items())


def test_inference_image_two_hands(inferencer, samples, table, monkeypatch):
    model = inferencer.model
    monkeypatch.setattr(model, 'detect', forced_detect(table))
    info = samples['two']
    sample = inference_image(model, info['path'])
    inst = sample.pred_instances
    assert len(inst) == 2
    np.testing.assert_allclose(inst.bboxes.numpy(), info['bboxes'], atol=1e-4)
    assert inst.labels.tolist() == info['labels'].tolist()
    assert sample.metainfo['cam_intrinsics_assumed']
    # the assumed camera: focal_factor (1.2) * max(H, W), centre
    k = np.asarray(sample.metainfo['cam_intrinsics'])
    np.testing.assert_allclose(
        k, [[768.0, 0, 319.5], [0, 768.0, 239.5], [0, 0, 1]], rtol=1e-6)
    # the given camera is used as it is
    sample = inference_image(
        model, load_image(info['path']), cam_intrinsics=info['intrinsics'])
    assert not sample.metainfo.get('cam_intrinsics_assumed', False)
    np.testing.assert_allclose(
        np.asarray(sample.metainfo['cam_intrinsics']),
        info['intrinsics'],
        rtol=1e-6)


def _check_mesh_files(out_dir, pred, faces):
    for hand in pred['hands']:
        v, f = read_obj(osp.join(out_dir, hand['mesh_file']))
        assert v.shape == (778, 3) and f.shape == (1538, 3)
        side = 0 if hand['handedness'] == 'right' else 1
        assert hand['mesh_file'].endswith(
            f"_hand{hand['id']}_{hand['handedness']}.obj")
        np.testing.assert_array_equal(f, faces[side])
        # outward winding for this hand: the wrist-capped mesh has a
        # positive volume
        capped_v, capped_f = cap_boundary_loops(v, f)
        assert signed_volume(capped_v, capped_f) > 0


def test_two_hands_outputs(forced, samples, tmp_path):
    info = samples['two']
    out_dir = str(tmp_path / 'out')
    result = forced(info['path'], out_dir=out_dir, return_vis=True)
    assert result['errors'] == []
    (pred, ) = result['predictions']
    validate_result(pred)
    stem = 'two'
    assert _outputs(out_dir, stem) == [
        'two.json', 'two_hand0_right.obj', 'two_hand1_left.obj',
        'two_overlay.jpg', 'two_side.jpg'
    ]
    assert not [f for f in os.listdir(out_dir) if f.startswith('.')]
    with open(osp.join(out_dir, 'two.json')) as f:
        on_disk = json.load(f)
    validate_result(on_disk)
    assert on_disk == pred
    assert pred['image'] == dict(
        path=info['path'], name='two', frame=None, width=640, height=480)
    assert [h['handedness'] for h in pred['hands']] == ['right', 'left']
    np.testing.assert_allclose([h['bbox'] for h in pred['hands']],
                               info['bboxes'],
                               atol=0.006)
    assert [h['score'] for h in pred['hands']] == pytest.approx([0.9, 0.8])
    assert pred['pairs'] == [
        dict(
            right=0,
            left=1,
            score=pytest.approx(1.7),
            rel_transl=pred['pairs'][0]['rel_transl'])
    ]
    # rel_transl = left wrist - right wrist
    j = np.array([h['joints_3d'] for h in pred['hands']])
    np.testing.assert_allclose(
        pred['pairs'][0]['rel_transl'], j[1, 0] - j[0, 0], atol=2e-6)
    # joints_2d are the projections of joints_3d with the reported camera
    k = np.array(pred['camera']['intrinsics'])
    assert pred['camera']['assumed'] is True
    for hand in pred['hands']:
        p = np.array(hand['joints_3d'])
        uv = p[:, :2] / p[:, 2:] * k[[0, 1], [0, 1]] + k[:2, 2]
        np.testing.assert_allclose(hand['joints_2d'], uv, atol=0.02)
    _check_mesh_files(out_dir, pred, forced.faces)
    t = pred['timing_ms']
    assert t['refinement'] is None  # the tiny model has no refiner
    assert min(t['detector'], t['reconstruction'], t['rendering']) >= 0
    assert t['total'] >= t['reconstruction'] + t['rendering']
    # pictures: the overlay differs from the photo where the meshes are
    (vis, ) = result['visualization']
    photo = _small(load_image(info['path']))[..., ::-1]
    assert vis['overlay'].shape == photo.shape == (240, 320, 3)
    assert np.abs(vis['overlay'].astype(int) - photo).max() > 50
    assert vis['side'].shape == photo.shape
    assert (vis['side'] < 250).any()  # something drawn on the white panel
    # the timing wrappers are gone, the forced detector stays
    assert forced.model.detect.__name__ == 'detect'
    assert 'refine' not in vars(forced.model.reconstructor)


def test_one_hand_and_no_hands(forced, samples, tmp_path):
    out_dir = str(tmp_path / 'out')
    result = forced([samples['right']['path'], samples['none']['path']],
                    out_dir=out_dir,
                    return_vis=True)
    right, none = result['predictions']
    validate_result(right)
    validate_result(none)
    assert [h['handedness'] for h in right['hands']] == ['right']
    assert right['pairs'] == [
        dict(right=0, left=None, score=pytest.approx(0.9), rel_transl=None)
    ]
    _check_mesh_files(out_dir, right, forced.faces)
    assert none['hands'] == [] and none['pairs'] == []
    assert _outputs(
        out_dir, 'none') == ['none.json', 'none_overlay.jpg', 'none_side.jpg']
    # no hands: the overlay is the photo, the side view an empty panel
    photo = _small(load_image(samples['none']['path']))[..., ::-1]
    np.testing.assert_array_equal(result['visualization'][1]['overlay'], photo)
    side = result['visualization'][1]['side']
    assert (side == 255).mean() > 0.98
    written = cv2.imread(osp.join(out_dir, 'none_overlay.jpg'))
    assert np.abs(written.astype(int) - photo[..., ::-1]).mean() < 3


def test_failure_mid_write_leaves_no_files(forced, samples, tmp_path,
                                           monkeypatch):
    out_dir = str(tmp_path / 'out')
    real = inferencer_module.write_obj
    calls = []

    def flaky_write_obj(path, *args, **kwargs):
        calls.append(path)
        real(path, *args, **kwargs)
        if len(calls) == 2:  # the second mesh of the first image
            raise OSError('disk full')

    monkeypatch.setattr(inferencer_module, 'write_obj', flaky_write_obj)
    inputs = [samples['two']['path'], samples['right']['path']]
    result = forced(inputs, out_dir=out_dir, skip_errors=True)
    assert [e['name'] for e in result['errors']] == ['two']
    assert 'disk full' in result['errors'][0]['error']
    assert [p['image']['name'] for p in result['predictions']] == ['right']
    # nothing of 'two', no staging folder, all of 'right'
    assert sorted(os.listdir(out_dir)) == [
        'right.json', 'right_hand0_right.obj', 'right_overlay.jpg',
        'right_side.jpg'
    ]
    # without skip_errors the error is raised, still without files
    calls.clear()
    out2 = str(tmp_path / 'out2')
    with pytest.raises(OSError, match='disk full'):
        forced(inputs[0], out_dir=out2)
    assert os.listdir(out2) == []


def test_bad_inputs_are_reported(forced, samples, tmp_path):
    bad = tmp_path / 'bad.jpg'
    bad.write_text('not an image')
    result = forced(
        [str(bad),
         str(tmp_path / 'missing.png'), samples['none']['path']],
        out_dir=str(tmp_path / 'out'),
        skip_errors=True)
    assert [e['name'] for e in result['errors']] == ['bad', 'missing']
    assert 'ValueError' in result['errors'][0]['error']
    assert 'FileNotFoundError' in result['errors'][1]['error']
    assert len(result['predictions']) == 1
    assert sorted(os.listdir(tmp_path / 'out')) == [
        'none.json', 'none_overlay.jpg', 'none_side.jpg'
    ]
    with pytest.raises(FileNotFoundError, match='missing.png'):
        forced(str(tmp_path / 'missing.png'))


def test_folder_batches_and_options(forced, samples, tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for kind in ('two', 'right', 'none'):
        os.link(samples[kind]['path'], folder / f'{kind}.jpg')
    (folder / 'readme.txt').write_text('skipped: not an image extension')
    one = forced(str(folder))['predictions']
    forced.batch_size = 2
    try:
        two = forced(
            str(folder),
            out_dir=str(tmp_path / 'out'),
            save_mesh=False,
            side_view=False)['predictions']
    finally:
        forced.batch_size = 1
    assert [p['image']['name'] for p in one] == ['none', 'right', 'two']
    # batching does not change the results
    for a, b in zip(one, two):
        assert a['hands'] == [dict(h, mesh_file=None) for h in b['hands']]
        assert all(h['mesh_file'] is None for h in a['hands'])
    assert sorted(os.listdir(tmp_path / 'out')) == [
        'none.json', 'none_overlay.jpg', 'right.json', 'right_overlay.jpg',
        'two.json', 'two_overlay.jpg'
    ]


def test_video_frames(forced, samples, table, tmp_path):
    path = str(tmp_path / 'clip.avi')
    frames = [load_image(samples[k]['path']) for k in ('two', 'none', 'right')]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 5,
                             (640, 480))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    # MJPG re-encodes the frames: force the boxes of the decoded frames
    cap = cv2.VideoCapture(path)
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    cap.release()
    assert len(decoded) == 3
    for img, kind in zip(decoded, ('two', 'none', 'right')):
        table[image_key(img)] = (samples[kind]['bboxes'],
                                 samples[kind]['labels'])
    out_dir = str(tmp_path / 'out')
    result = forced(path, out_dir=out_dir)
    names = [p['image']['name'] for p in result['predictions']]
    assert names == ['clip_000000', 'clip_000001', 'clip_000002']
    assert [p['image']['frame'] for p in result['predictions']] == [0, 1, 2]
    assert [len(p['hands']) for p in result['predictions']] == [2, 0, 1]
    assert 'clip_000000_hand1_left.obj' in os.listdir(out_dir)
    for p in result['predictions']:
        validate_result(p)


def test_very_large_photo(forced, samples, table, tmp_path):
    """An 8000 x 6000 photo: the model crops from the full image, the
    pictures are drawn downscaled, the JSON is in full-image pixels."""
    s = 12.5
    small = load_image(samples['two']['path'])
    big = cv2.resize(small, (8000, 6000), interpolation=cv2.INTER_NEAREST)
    boxes = (samples['two']['bboxes'] + 0.5) * s - 0.5
    table[image_key(big)] = (boxes, samples['two']['labels'])
    result = forced(big, out_dir=str(tmp_path / 'out'), return_vis=True)
    (pred, ) = result['predictions']
    assert pred['image']['width'] == 8000 and pred['image']['name'] == \
        'image_000000'
    np.testing.assert_allclose([h['bbox'] for h in pred['hands']],
                               boxes,
                               atol=0.006)
    assert result['visualization'][0]['overlay'].shape == (240, 320, 3)
    written = cv2.imread(str(tmp_path / 'out' / 'image_000000_overlay.jpg'))
    assert written.shape == (240, 320, 3)
    # the meshes land where they do on the small photo (same camera up to
    # the scale): the overlays agree away from the edges
    vis_small = forced(small, return_vis=True)['visualization'][0]
    diff = np.abs(vis_small['overlay'].astype(int) -
                  result['visualization'][0]['overlay'])
    assert np.median(diff) < 8


def test_inferencer_from_a_built_model(inferencer, tiny_model_files, tmp_path):
    model = inferencer.model
    _, checkpoint = tiny_model_files
    before = (model.refine, model.det_score_thr)
    try:
        other = Hand2PInferencer(
            model,
            weights=checkpoint,
            refine=False,
            det_score_thr=0.55,
            show_progress=False)
        assert other.model is model
        assert model.refine is False and model.det_score_thr == 0.55
        np.testing.assert_array_equal(other.faces, inferencer.faces)
        with pytest.raises(FileNotFoundError, match='nope.pth'):
            Hand2PInferencer(model, weights=str(tmp_path / 'nope.pth'))
        with pytest.raises(ValueError, match='batch_size'):
            Hand2PInferencer(model, batch_size=0)
    finally:
        model.refine, model.det_score_thr = before
