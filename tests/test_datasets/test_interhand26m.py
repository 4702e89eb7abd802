# Copyright (c) mmhand2p contributors. All rights reserved.
import json
import logging
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
        for a in json.load(open(osp.join(root, 'test_interhand2.6m_data.json')))
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
    assert 'joint_valid is not 42 long: 1 (e.g. image id [0])' in msg
    assert 'NaN/inf in world_coord: 2 (e.g. image id [2, 3])' in msg


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
