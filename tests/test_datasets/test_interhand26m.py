# Copyright (c) mmhand2p contributors. All rights reserved.
import json
import logging
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from scipy.spatial.transform import Rotation

from mmhand2p.datasets import InterHand26MDataset
from mmhand2p.datasets.interhand_writer import InterHandFormatWriter
from mmhand2p.models.body_models import (SKELETON_PARENTS, MANOLayer,
                                         hand21_to_interhand)
from mmhand2p.registry import DATASETS


def _fixture_dataset(root, **kwargs):
    return DATASETS.build(
        dict(
            type='InterHand26MDataset',
            data_root=root,
            ann_file='test_interhand2.6m_data.json',
            camera_file='test_interhand2.6m_camera.json',
            joint_file='test_interhand2.6m_joint_3d.json',
            img_prefix=root,
            test_mode=True,
            index_cache_dir=None,
            **kwargs))


def test_real_frames_project_onto_hands(shared_fixtures, tmp_path):
    root = osp.join(shared_fixtures, 'interhand26m')
    ds = _fixture_dataset(root)
    assert len(ds) == 4 and ds.num_skipped == 0
    anns = {
        a['image_id']: a
        for a in json.load(
            open(osp.join(root, 'test_interhand2.6m_data.json')))
        ['annotations']
    }
    types = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        types[info['img_id']] = info['hand_type']
        x, y, w, h = anns[info['img_id']]['bbox']
        valid = info['joints_2d_valid'] > 0
        assert valid.sum() >= 21
        uv = info['joints_2d'][valid]
        # every valid projected joint inside the box expanded by 10%
        assert (uv[:, 0] >= x - 0.1 * w).all() and (uv[:, 0] <=
                                                    x + 1.1 * w).all()
        assert (uv[:, 1] >= y - 0.1 * h).all() and (uv[:, 1] <=
                                                    y + 1.1 * h).all()
        # metres, in front of the camera, hands about a metre away
        z = info['joints_3d'][..., 2][info['joints_3d_valid'] > 0]
        assert ((z > 0.5) & (z < 2.0)).all()
        # the image is the one named, and the overlay is saved for a look
        img = cv2.imread(info['img_path'])
        assert img.shape[:2] == info['ori_shape']
        for hand, colour in ((0, (0, 0, 255)), (1, (255, 0, 0))):
            for j, p in enumerate(SKELETON_PARENTS):
                if p >= 0 and valid[hand, j] and valid[hand, p]:
                    cv2.line(img, tuple(int(v) for v in info['joints_2d'][
                        hand, j]), tuple(int(v) for v in info['joints_2d'][
                            hand, p]), colour, 2)
        cv2.imwrite(str(tmp_path / f'overlay_{info["img_id"]}.jpg'), img)
    assert sorted(types.values()) == ['interacting', 'interacting', 'left',
                                      'right']
    # one-hand frames: the other hand is absent and has no valid joints
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        if info['hand_type'] != 'interacting':
            absent = 1 if info['hand_type'] == 'right' else 0
            assert not info['hand_valid'][absent]
            assert info['joints_3d_valid'][absent].sum() == 0
    assert len(ds[0]['joints_3d']) == 2  # through the (empty) pipeline


def test_hand_type_filter(shared_fixtures):
    root = osp.join(shared_fixtures, 'interhand26m')
    assert len(_fixture_dataset(root, hand_type='interacting')) == 2
    assert len(_fixture_dataset(root, hand_type='single')) == 2
    assert len(_fixture_dataset(root, hand_type=['right'])) == 1
    with pytest.raises(ValueError, match='hand_type'):
        _fixture_dataset(root, hand_type='both')


def test_missing_annotation_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='InterHand2.6M_test_data'):
        InterHand26MDataset(
            data_root=str(tmp_path), split='test', index_cache_dir=None)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        InterHand26MDataset(
            data_root=str(tmp_path), ann_file='nope.json', split='test')


# ---------------------------------------------------------------------------
# a small world written in the release format, with MANO annotations
# ---------------------------------------------------------------------------
def _write_world(root, layer, num_frames=3, num_cams=2, seed=0):
    """MANO hands in a world frame (mm joints, NeuralAnnot params)."""
    rng = np.random.default_rng(seed)
    writer = InterHandFormatWriter(str(root), 'test')
    target = np.array([50.0, -30.0, 900.0])  # mm
    for c in range(num_cams):
        rot = Rotation.from_rotvec(rng.normal(scale=0.5, size=3)).as_matrix()
        campos = target - rot.T @ np.array([0, 0, 700.0 + 100 * c])
        writer.add_camera(0, f'40{c}', rot, campos, (1200.0, 1190.0),
                          (300.0 + 10 * c, 260.0))
    img_id = 0
    for f in range(num_frames):
        pose = torch.tensor(rng.normal(scale=0.3, size=(1, 2, 16, 3)),
                            dtype=torch.float32)
        betas = torch.tensor(rng.normal(size=(1, 2, 10)), dtype=torch.float32)
        trans = torch.tensor(
            target / 1000 + rng.normal(scale=0.05, size=(1, 2, 3)),
            dtype=torch.float32)
        out = layer(pose=pose, betas=betas, transl=trans)  # world, metres
        world = hand21_to_interhand(out.joints[0]).numpy() * 1000
        hand_type = ('interacting', 'right', 'left')[f % 3]
        valid = np.ones(42)
        if hand_type == 'right':
            valid[21:] = 0
        if hand_type == 'left':
            valid[:21] = 0
        mano = {
            side: dict(
                pose=pose[0, h].numpy(),
                shape=betas[0, h].numpy(),
                trans=trans[0, h].numpy())
            for h, side in enumerate(('right', 'left'))
        }
        if f == 2:
            mano['left'] = None  # a present-hand-less gap is fine here
        writer.add_frame(0, 100 + f, world, valid, hand_type, mano)
        for c in range(num_cams):
            writer.add_image(img_id, 0, 'seq', f'40{c}', 100 + f,
                             f'cam40{c}/image{100 + f}.jpg', 640, 480,
                             [0, 0, 10, 10], valid, hand_type)
            img_id += 1
    writer.write()
    return writer


@pytest.fixture(scope='module')
def mano_world(tmp_path_factory):
    root = tmp_path_factory.mktemp('ih_world')
    layer_mean = MANOLayer(flat_hand_mean=False)  # NeuralAnnot semantics
    _write_world(root, layer_mean)
    return str(root)


def test_camera_frame_mano_reproduces_joints(mano_world):
    ds = InterHand26MDataset(
        data_root=mano_world, split='test', require_mano=True,
        index_cache_dir=None)
    # frame 102 ('left' only, left MANO missing) is dropped: 2 frames x 2 cams
    assert len(ds) == 4
    layer = MANOLayer()  # samples are flat-hand relative
    worst = 0.0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        out = layer(
            pose=torch.from_numpy(info['mano_pose'])[None],
            betas=torch.from_numpy(info['mano_betas'])[None],
            transl=torch.from_numpy(info['mano_transl'])[None])
        for h in range(2):
            if info['mano_valid'][h]:
                err = np.linalg.norm(
                    out.joints[0, h].numpy() - info['joints_3d'][h], axis=-1)
                worst = max(worst, float(err.max()))
    assert worst < 1e-3, f'{worst * 1000:.3f} mm'

    # without require_mano the frame stays, its left MANO marked invalid
    ds_all = InterHand26MDataset(
        data_root=mano_world, split='test', index_cache_dir=None)
    assert len(ds_all) == 6
    last = [ds_all.get_data_info(i) for i in range(6)
            if ds_all.get_data_info(i)['hand_type'] == 'left']
    assert last and not last[0]['mano_valid'][1]


def test_malformed_records_are_named_and_skipped(mano_world, tmp_path):
    import shutil
    root = tmp_path / 'bad'
    shutil.copytree(mano_world, root)
    ann_dir = root / 'annotations' / 'test'
    data = json.load(open(ann_dir / 'InterHand2.6M_test_data.json'))
    data['annotations'][0]['joint_valid'] = [[1]] * 41  # image id 0
    json.dump(data, open(ann_dir / 'InterHand2.6M_test_data.json', 'w'))
    joints = json.load(open(ann_dir / 'InterHand2.6M_test_joint_3d.json'))
    joints['0']['101']['world_coord'][3][1] = float('nan')  # image ids 2, 3
    json.dump(joints, open(ann_dir / 'InterHand2.6M_test_joint_3d.json', 'w'))

    records = []

    class _Capture(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = _Capture(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        ds = InterHand26MDataset(
            data_root=str(root), split='test', index_cache_dir=None)
    finally:
        logger.removeHandler(handler)
    assert ds.num_skipped == 3 and len(ds) == 3
    msg = ' '.join(records)
    assert 'skipped 3 malformed' in msg
    assert ("joint_valid is not 42 long: 1 (image id 0 'cam400/image100.jpg'"
            ' capture 0 frame 100)') in msg
    assert ("NaN/inf in world_coord: 2 (image id 2 'cam400/image101.jpg' "
            "capture 0 frame 101, image id 3 'cam401/image101.jpg' capture 0 "
            'frame 101)') in msg
    assert ds.skip_counts == {'joint_valid is not 42 long': 1,
                              'NaN/inf in world_coord': 2}


def test_index_cache_roundtrip_and_invalidation(mano_world, tmp_path):
    import os
    import shutil
    root = tmp_path / 'world'
    shutil.copytree(mano_world, root)
    cache = tmp_path / 'cache'
    first = InterHand26MDataset(
        data_root=str(root), split='test', index_cache_dir=str(cache))
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith('.npz')
    second = InterHand26MDataset(
        data_root=str(root), split='test', index_cache_dir=str(cache),
        require_mano=True)  # filters apply on top of the cached index
    assert len(first) == 6 and len(second) == 4
    third = InterHand26MDataset(
        data_root=str(root), split='test', index_cache_dir=str(cache))
    for i in range(len(first)):
        a, b = first.get_data_info(i), third.get_data_info(i)
        for k, v in a.items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(b[k]),
                                          err_msg=k)
    # editing an annotation file makes a new cache entry
    data = root / 'annotations' / 'test' / 'InterHand2.6M_test_data.json'
    d = json.load(open(data))
    d['annotations'] = d['annotations'][:2]
    json.dump(d, open(data, 'w'))
    fourth = InterHand26MDataset(
        data_root=str(root), split='test', index_cache_dir=str(cache))
    assert len(fourth) == 2 and len(os.listdir(cache)) == 2


# ---------------------------------------------------------------------------
# every malformed record is skipped at index time, counted and named
# ---------------------------------------------------------------------------
def _edit_world(src, dst, edit):
    """Copy the world ``src`` to ``dst`` and let ``edit(files)`` change the
    parsed annotation files (``files['data' | 'camera' | 'joint_3d' |
    'MANO_NeuralAnnot']``) before they are written back."""
    import shutil
    shutil.copytree(src, dst)
    ann_dir = dst / 'annotations' / 'test'
    kinds = ('data', 'camera', 'joint_3d', 'MANO_NeuralAnnot')
    paths = {k: ann_dir / f'InterHand2.6M_test_{k}.json' for k in kinds}
    files = {k: json.load(open(p)) for k, p in paths.items()}
    edit(files)
    for k, p in paths.items():
        json.dump(files[k], open(p, 'w'))
    return str(dst)


def _build_logged(root, **kwargs):
    """The dataset and the warnings logged while it was built."""
    records = []

    class _Capture(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = _Capture(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        kwargs.setdefault('index_cache_dir', None)
        ds = InterHand26MDataset(data_root=root, split='test', **kwargs)
    finally:
        logger.removeHandler(handler)
    return ds, records


def _image(files, img_id):
    return next(i for i in files['data']['images'] if i['id'] == img_id)


def _set_height(value):

    def edit(files):
        _image(files, 0)['height'] = value

    return edit


def _drop_key(key):

    def edit(files):
        del _image(files, 0)[key]

    return edit


def _camera(field, value):

    def edit(files):  # camera '401': image ids 1, 3, 5
        files['camera']['0'][field]['401'] = value

    return edit


# (edit, reason in the warning, image ids skipped); the mano_world has
# frames 100 (interacting), 101 (right), 102 (left) x cameras 400, 401,
# image id = 2 * frame index + camera index
MALFORMED = {
    'non-numeric height': (_set_height('tall'),
                           'height is missing or not a number', [0]),
    'zero height': (_set_height(0), 'height is not a positive number', [0]),
    'negative width': (lambda f: _image(f, 0).update(width=-640),
                       'width is not a positive number', [0]),
    'missing height': (_drop_key('height'),
                       'height is missing or not a number', [0]),
    'missing file_name': (_drop_key('file_name'),
                          "missing field 'file_name'", [0]),
    'zero focal': (_camera('focal', [0.0, 0.0]),
                   'focal length is not positive', [1, 3, 5]),
    'NaN principal point': (_camera('princpt', [float('nan'), 240.0]),
                            'NaN/inf in camera', [1, 3, 5]),
    'missing principal point': (lambda f: f['camera']['0']['princpt'].pop(
        '401'), 'no camera entry', [1, 3, 5]),
    'singular camrot': (_camera('camrot', [[1, 0, 0], [0, 1, 0], [0, 0, 0]]),
                        'camrot is not a rotation', [1, 3, 5]),
    'reflecting camrot': (_camera('camrot',
                                  [[1, 0, 0], [0, 1, 0], [0, 0, -1]]),
                          'camrot is not a rotation', [1, 3, 5]),
    'NaN in joint_valid': (lambda f: f['data']['annotations'][4][
        'joint_valid'].__setitem__(3, [float('nan')]),
                           'NaN/inf in joint_valid', [4]),
    'inf in world_coord': (lambda f: f['joint_3d']['0']['102'][
        'world_coord'][30].__setitem__(2, float('inf')),
                           'NaN/inf in world_coord', [4, 5]),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_each_malformed_record_is_skipped_counted_named(
        mano_world, tmp_path, case):
    edit, reason, ids = MALFORMED[case]
    root = _edit_world(mano_world, tmp_path / 'bad', edit)
    ds, warnings = _build_logged(root)
    assert ds.num_skipped == len(ids), case
    assert ds.skip_counts == {reason: len(ids)}
    assert len(ds) == 6 - len(ids)
    kept = sorted(ds.get_data_info(i)['img_id'] for i in range(len(ds)))
    assert kept == [i for i in range(6) if i not in ids]
    # one warning: the count, the reason and the records by id and file
    assert len(warnings) == 1, warnings
    assert f'skipped {len(ids)} malformed' in warnings[0]
    assert f'{reason}: {len(ids)} (image id {ids[0]} ' in warnings[0]
    for i in ids:
        assert f'image id {i} ' in warnings[0]
    # every kept sample can be read (a zero focal length used to raise
    # LinAlgError here, in the pipeline's inverse of the intrinsics)
    for i in range(len(ds)):
        k = ds.get_data_info(i)['cam_intrinsics']
        assert np.isfinite(np.linalg.inv(k)).all()


def test_warning_lists_three_names_and_the_rest_as_a_count(
        mano_world, tmp_path):

    def edit(files):
        for img in files['data']['images']:
            img['width'] = 'wide'

    ds, warnings = _build_logged(
        _edit_world(mano_world, tmp_path / 'bad', edit))
    assert len(ds) == 0 and ds.num_skipped == 6
    assert ("width is missing or not a number: 6 (image id 0 "
            "'cam400/image100.jpg' capture 0 frame 100, image id 1 "
            "'cam401/image100.jpg' capture 0 frame 100, image id 2 "
            "'cam400/image101.jpg' capture 0 frame 101 and 3 more)"
            ) in warnings[0]


def _nan_right_pose_of_frame_100(files):
    """The right hand's MANO pose of frame 100 (interacting: image ids 0,
    1) is NaN; the left hand's of frame 101 (right only: the left hand is
    absent, its MANO unused) too."""
    files['MANO_NeuralAnnot']['0']['100']['right']['pose'][5] = float('nan')
    files['MANO_NeuralAnnot']['0']['101']['left']['trans'][0] = float('inf')


def test_malformed_mano_with_require_mano_is_skipped_and_counted(
        mano_world, tmp_path):
    root = _edit_world(mano_world, tmp_path / 'bad',
                       _nan_right_pose_of_frame_100)
    ds, warnings = _build_logged(root, require_mano=True)
    # frame 100 skipped as malformed; frame 102 (left MANO None) filtered
    # by require_mano without being a fault; frame 101 kept
    kept = sorted(ds.get_data_info(i)['img_id'] for i in range(len(ds)))
    assert kept == [2, 3]
    assert ds.num_skipped == 2
    assert ds.skip_counts == {'NaN/inf or malformed MANO parameters': 2}
    assert len(warnings) == 1
    assert ("NaN/inf or malformed MANO parameters: 2 (image id 0 "
            "'cam400/image100.jpg' capture 0 frame 100, image id 1 "
            "'cam401/image100.jpg' capture 0 frame 100)") in warnings[0]


def test_malformed_mano_without_require_mano_drops_that_hand(
        mano_world, tmp_path):
    root = _edit_world(mano_world, tmp_path / 'bad',
                       _nan_right_pose_of_frame_100)
    ds, warnings = _build_logged(root)
    assert len(ds) == 6 and ds.num_skipped == 0
    assert ds.num_mano_dropped == 2
    infos = {ds.get_data_info(i)['img_id']: ds.get_data_info(i)
             for i in range(6)}
    for i in (0, 1):  # right MANO dropped, left kept, joints kept
        assert infos[i]['mano_valid'].tolist() == [False, True]
        assert np.isfinite(infos[i]['mano_pose']).all()
        assert infos[i]['joints_3d_valid'].sum() == 42
    assert infos[2]['mano_valid'].tolist() == [True, False]
    assert len(warnings) == 1
    assert '2 sample(s)' in warnings[0]
    assert "image id 0 'cam400/image100.jpg' capture 0 frame 100" in \
        warnings[0]


@pytest.mark.parametrize('entry', [[1, 2, 3], 'none', {'right': [0.0]}])
def test_mano_entry_that_is_not_an_object_is_malformed(
        mano_world, tmp_path, entry):

    def edit(files):
        files['MANO_NeuralAnnot']['0']['100'] = entry

    ds, _ = _build_logged(
        _edit_world(mano_world, tmp_path / 'bad', edit), require_mano=True)
    assert ds.num_skipped == 2
    assert sorted(ds.get_data_info(i)['img_id']
                  for i in range(len(ds))) == [2, 3]


def test_index_cache_gives_the_fresh_answer_for_malformed_records(
        mano_world, tmp_path):

    def edit(files):
        _image(files, 4)['height'] = 'tall'
        files['camera']['0']['focal']['401'] = [0.0, 1190.0]  # ids 1, 3, 5
        _nan_right_pose_of_frame_100(files)  # ids 0, 1

    root = _edit_world(mano_world, tmp_path / 'bad', edit)
    cache = str(tmp_path / 'cache')
    expected = {
        False: ([0, 2], {
            'height is missing or not a number': 1,
            'focal length is not positive': 3
        }, 1),
        True: ([2], {
            'height is missing or not a number': 1,
            'focal length is not positive': 3,
            'NaN/inf or malformed MANO parameters': 1
        }, 0),
    }
    for require_mano, (kept, counts, dropped) in expected.items():
        fresh, fresh_warn = _build_logged(root, require_mano=require_mano)
        first, first_warn = _build_logged(
            root, require_mano=require_mano, index_cache_dir=cache)
        cached, cached_warn = _build_logged(
            root, require_mano=require_mano, index_cache_dir=cache)
        assert len(os.listdir(cache)) == 1
        assert fresh_warn and fresh_warn == first_warn == cached_warn
        for ds in (fresh, first, cached):
            assert sorted(ds.get_data_info(i)['img_id']
                          for i in range(len(ds))) == kept
            assert ds.skip_counts == counts
            assert ds.num_skipped == sum(counts.values())
            assert ds.num_mano_dropped == dropped
            for i in range(len(ds)):
                a, b = fresh.get_data_info(i), ds.get_data_info(i)
                for k, v in a.items():
                    np.testing.assert_array_equal(
                        np.asarray(v), np.asarray(b[k]), err_msg=k)


def test_unreadable_index_cache_is_rebuilt(mano_world, tmp_path):
    cache = tmp_path / 'cache'
    first = InterHand26MDataset(
        data_root=mano_world, split='test', index_cache_dir=str(cache))
    (path, ) = cache.iterdir()
    path.write_bytes(b'not an npz')
    again, warnings = _build_logged(mano_world, index_cache_dir=str(cache))
    assert len(again) == len(first) == 6
    assert 'unreadable' in warnings[0] and str(path) in warnings[0]
    # and rewritten: the next load reads it without a warning
    third, warnings = _build_logged(mano_world, index_cache_dir=str(cache))
    assert len(third) == 6 and not warnings
