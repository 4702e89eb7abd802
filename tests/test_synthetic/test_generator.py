# Copyright (c) mmhand2p contributors. All rights reserved.
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import Config

from mmhand2p.datasets import InterHand26MDataset
from mmhand2p.models.body_models import MANOLayer
from mmhand2p.registry import DATASETS
from mmhand2p.structures import HandDataSample
from mmhand2p.synthetic import (SEG_LEFT, SEG_RIGHT, coco_boxes_path,
                                generate_synthetic_interhand, hand_contact,
                                hand_orientation, load_extras,
                                place_second_hand, sample_camera_rig)
from mmhand2p.utils.mesh import boundary_loops, cap_boundary_loops

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPLIT = 'val'
NUM_FRAMES, NUM_CAMS, SIZE, SEED = 6, 2, 128, 6
ANN_FILES = ('data', 'camera', 'joint_3d', 'MANO_NeuralAnnot')


def _generate(root, **kwargs):
    kw = dict(
        split=SPLIT,
        num_frames=NUM_FRAMES,
        num_cams=NUM_CAMS,
        image_size=SIZE,
        seed=SEED,
        frames_per_capture=4)
    kw.update(kwargs)
    return generate_synthetic_interhand(str(root), **kw)


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    summary = _generate(root)
    return str(root), summary


@pytest.fixture(scope='module')
def dataset(synth):
    return InterHand26MDataset(
        data_root=synth[0],
        split=SPLIT,
        require_mano=True,
        index_cache_dir=None,
        test_mode=True)


def test_layout_and_summary(synth):
    root, summary = synth
    assert summary['num_frames'] == NUM_FRAMES
    assert summary['num_images'] == NUM_FRAMES * NUM_CAMS
    # this seed draws every hand type (the test below relies on it)
    assert all(summary['hand_types'][t] > 0
               for t in ('interacting', 'right', 'left'))
    for name in ANN_FILES:
        assert osp.isfile(
            osp.join(root, 'annotations', SPLIT,
                     f'InterHand2.6M_{SPLIT}_{name}.json'))
    data = json.load(
        open(
            osp.join(root, 'annotations', SPLIT,
                     f'InterHand2.6M_{SPLIT}_data.json')))
    for img in data['images']:
        parts = img['file_name'].split('/')
        assert parts[0].startswith('Capture') and parts[2].startswith('cam')
        assert parts[3] == f'image{img["frame_idx"]}.jpg'
        assert osp.isfile(osp.join(root, 'images', SPLIT, img['file_name']))
    # nothing temporary is left behind
    assert not [n for n in os.listdir(root) if n.startswith('.tmp')]


def test_dataset_reads_split_and_mano_reproduces_joints(synth, dataset):
    assert len(dataset) == NUM_FRAMES * NUM_CAMS
    layer = MANOLayer()  # data infos are flat-hand relative
    worst = 0.0
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        present = np.array(
            [info['hand_type'] != 'left', info['hand_type'] != 'right'])
        np.testing.assert_array_equal(info['hand_valid'], present)
        np.testing.assert_array_equal(info['mano_valid'], present)
        assert (info['joints_3d_valid'][~present] == 0).all()
        assert (info['joints_3d_valid'][present] == 1).all()
        out = layer(
            pose=torch.from_numpy(info['mano_pose'])[None],
            betas=torch.from_numpy(info['mano_betas'])[None],
            transl=torch.from_numpy(info['mano_transl'])[None])
        for h in np.flatnonzero(present):
            err = np.linalg.norm(
                out.joints[0, h].numpy() - info['joints_3d'][h], axis=-1)
            worst = max(worst, float(err.max()))
        # hands about half a metre to a metre in front of the camera
        z = info['joints_3d'][present][..., 2]
        assert ((z > 0.3) & (z < 1.2)).all()
        k = info['cam_intrinsics']
        assert 1.2 * SIZE - 1 <= k[0, 0] <= 1.6 * SIZE * 1.02
        assert k[0, 2] != (SIZE - 1) / 2
    assert worst < 1e-5, f'{worst * 1000:.5f} mm'  # float32 rounding


def test_projected_joints_land_on_their_hand(dataset):
    """Joints are inside the meshes: each valid projected joint falls on a
    pixel of its own hand (within 2 px), unless the other hand hides it."""
    own = not_hidden = hidden = 0
    total = 0
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        extras = load_extras(info['img_path'])
        seg, depth = extras['seg'], extras['depth']
        assert seg.shape == depth.shape == info['ori_shape']
        np.testing.assert_array_equal(seg > 0, depth > 0)
        assert set(np.unique(seg)) <= {0, SEG_RIGHT, SEG_LEFT}
        h_img, w_img = seg.shape
        for h, hid in enumerate((SEG_RIGHT, SEG_LEFT)):
            for j in np.flatnonzero(info['joints_2d_valid'][h] > 0):
                u, v = np.round(info['joints_2d'][h, j]).astype(int)
                z = info['joints_3d'][h, j, 2]
                win = (slice(max(v - 2, 0),
                             v + 3), slice(max(u - 2, 0), u + 3))
                total += 1
                if (seg[win] == hid).any():
                    own += 1
                    not_hidden += 1
                elif seg[v, u] not in (0, hid) and depth[v, u] < z:
                    hidden += 1  # behind the other hand
                else:
                    not_hidden += 1
    assert total > 200
    assert own / not_hidden >= 0.9, (own, not_hidden)
    assert (own + hidden) / total >= 0.97, (own, hidden, total)


def test_same_seed_same_files(synth, tmp_path):
    root, _ = synth
    again = tmp_path / 'again'
    _generate(again, workers=2)  # processes do not change the output
    names = [f'InterHand2.6M_{SPLIT}_{n}.json' for n in ANN_FILES]
    names += [
        f'synthetic_{SPLIT}_frames.json', f'hand_boxes_{SPLIT}_coco.json'
    ]
    for name in names:
        a = osp.join(root, 'annotations', SPLIT, name)
        b = osp.join(str(again), 'annotations', SPLIT, name)
        assert filecmp.cmp(a, b, shallow=False), name
    data = json.load(
        open(
            osp.join(root, 'annotations', SPLIT,
                     f'InterHand2.6M_{SPLIT}_data.json')))
    for img in data['images'][:3]:
        for suffix in ('.jpg', '_seg.png', '_depth.png'):
            rel = img['file_name'][:-4] + suffix
            assert filecmp.cmp(
                osp.join(root, 'images', SPLIT, rel),
                osp.join(str(again), 'images', SPLIT, rel),
                shallow=False), rel
    other = tmp_path / 'other'
    _generate(other, seed=SEED + 1, num_frames=1, coco_boxes=False)
    name = f'InterHand2.6M_{SPLIT}_joint_3d.json'
    assert json.load(open(osp.join(
        root, 'annotations', SPLIT, name)))['0']['0'] != json.load(
            open(osp.join(str(other), 'annotations', SPLIT, name)))['0']['0']


def test_full_pipeline_on_generated_split(synth):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', '_base_', 'datasets',
                 'synthetic_interhand.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(data_root=synth[0], split=SPLIT, index_cache_dir=None)
    ds = DATASETS.build(ds_cfg)
    np.random.seed(0)
    for i in range(len(ds)):
        out = ds[i]
        assert tuple(out['inputs'].shape) == (3, 256, 256)
        sample = out['data_samples']
        assert isinstance(sample, HandDataSample)
        gt = sample.gt_hands
        assert tuple(gt.joints_3d.shape) == (2, 21, 3)
        assert tuple(gt.mano_pose.shape) == (2, 16, 3)
        assert tuple(gt.joints_25d.shape) == (2, 21, 3)
    # the test pipeline too
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.update(data_root=synth[0], split=SPLIT, index_cache_dir=None)
    out = DATASETS.build(ds_cfg)[0]
    assert tuple(out['inputs'].shape) == (3, 256, 256)


def test_coco_boxes_contain_each_hands_joints(synth, dataset):
    from xtcocotools.coco import COCO
    coco = COCO(coco_boxes_path(synth[0], SPLIT))
    cats = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    assert cats == {1: 'right_hand', 2: 'left_hand'}
    assert len(coco.getImgIds()) == len(dataset)
    checked = 0
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        img = coco.loadImgs(info['img_id'])[0]
        assert osp.join(synth[0], 'images', SPLIT,
                        img['file_name']) == info['img_path']
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info['img_id']))
        by_cat = {a['category_id']: a for a in anns}
        assert len(by_cat) == len(anns)
        assert set(by_cat) == {
            h + 1
            for h in np.flatnonzero(info['hand_valid'])
        }
        for h in np.flatnonzero(info['hand_valid']):
            x, y, w, hh = by_cat[h + 1]['bbox']
            assert w > 0 and hh > 0
            assert x >= 0 and y >= 0 and x + w <= img['width'] + 1e-6
            m = info['joints_2d_valid'][h] > 0
            uv = info['joints_2d'][h][m] + 0.5  # COCO pixel convention
            assert (uv[:, 0] >= x - 1e-3).all()
            assert (uv[:, 0] <= x + w + 1e-3).all()
            assert (uv[:, 1] >= y - 1e-3).all()
            assert (uv[:, 1] <= y + hh + 1e-3).all()
            checked += 1
    assert checked > len(dataset)


def test_existing_split_and_failed_run(synth, tmp_path):
    with pytest.raises(FileExistsError, match='overwrite'):
        _generate(synth[0])

    def fail(done, total):
        if done == 2:
            raise RuntimeError('interrupted')

    root = tmp_path / 'failed'
    with pytest.raises(RuntimeError, match='interrupted'):
        _generate(root, progress=fail, num_frames=3)
    assert not osp.exists(root / 'images' / SPLIT)
    assert not osp.exists(root / 'annotations' / SPLIT)
    assert os.listdir(root) == []
    with pytest.raises(ValueError, match='split'):
        _generate(root, split='training')


def test_camera_rig_looks_at_the_hands():
    rng = np.random.default_rng(0)
    centre = np.array([10.0, -20.0, 30.0])
    for cam in sample_camera_rig(rng, 8, (240, 320), center_mm=centre):
        rot = cam['camrot']
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) > 0
        c = rot @ (centre - cam['campos'])
        assert 380 < c[2] < 720  # mm in front of the camera
        uv = c[:2] / c[2] * cam['focal'] + cam['princpt']
        # aimed at the centre up to the aim jitter (25 mm) and the roll
        assert np.abs(uv - [159.5, 119.5]).max() < 60
        assert 1.2 * 320 <= cam['focal'][0] <= 1.6 * 320


def test_hand_orientation_and_contact():
    layer = MANOLayer()
    d = np.array([0.0, -0.6, -0.8])
    n = np.array([1.0, 0.0, 0.0])
    for h, is_right in enumerate((True, False)):
        rot = hand_orientation(d, n, is_right)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        # MANO frame: fingers along -x (right) / +x (left), palm faces -y
        np.testing.assert_allclose(
            rot @ np.array([-1.0 if is_right else 1.0, 0, 0]), d, atol=1e-12)
        np.testing.assert_allclose(rot @ [0, -1.0, 0], n, atol=1e-12)

    # two right hands stacked along the palm normal: clearance, contact and
    # penetration
    verts = layer.right.v_template.double().numpy()
    faces = layer.faces[0].numpy()
    loop = boundary_loops(faces)[0]
    capped_v, capped_f = cap_boundary_loops(verts, faces)
    assert capped_v.shape[0] == verts.shape[0] + 1
    np.testing.assert_allclose(capped_v[-1], verts[loop].mean(0))
    u = np.array([0.0, -1.0, 0.0])
    s = place_second_hand(capped_v, capped_f, capped_v, capped_f, u, 0.002)
    facts = hand_contact(capped_v, capped_f, capped_v + s * u, capped_f)
    assert 0.5 < facts['min_gap_mm'] <= 2.05
    assert facts['penetration_volume_cm3'] == 0
    s_pen = place_second_hand(
        capped_v, capped_f, capped_v, capped_f, u, 0.0, push=0.005)
    assert s_pen == pytest.approx(s - 0.007, abs=3e-4)
    facts = hand_contact(capped_v, capped_f, capped_v + s_pen * u, capped_f)
    assert facts['min_gap_mm'] == 0 and facts['penetration_volume_cm3'] > 0
