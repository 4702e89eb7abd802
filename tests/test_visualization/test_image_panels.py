# Copyright (c) mmhand2p contributors. All rights reserved.
"""Whole-image pictures and results from a data sample built by hand with
documented fields only (HAND_FIELDS / INSTANCE_FIELDS / META_FIELDS), no
model: ``hand_instances``, ``prediction_to_dict`` and
``TwoHandLocalVisualizer.add_datasample(panels=...)``."""
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.apis import draw_overlay, draw_side_view, validate_result
from mmhand2p.apis.inferencer import prediction_to_dict
from mmhand2p.conventions import load_mano_file, resolve_mano_path
from mmhand2p.structures import (HAND_FIELDS, INSTANCE_FIELDS, META_FIELDS,
                                 HandDataSample, hand_instances)
from mmhand2p.visualization import (IMAGE_PANELS, TwoHandLocalVisualizer,
                                    draw_mesh_overlay)

H, W = 120, 160
K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
TRANSL = np.array([[-0.15, 0.0, 0.6], [0.15, 0.0, 0.6]])


def _template():
    return np.stack([
        np.asarray(load_mano_file(resolve_mano_path(None, side))['v_template'])
        for side in (True, False)
    ])


def _sample(valid=(1, 1), with_boxes=True):
    """A whole-image prediction in the two-hand layout (pred_hands)."""
    verts = _template() + TRANSL[:, None]
    joints = verts[:, :21]
    uvw = joints @ K.T
    j2d = uvw[..., :2] / uvw[..., 2:]
    fields = dict(
        hand_valid=torch.tensor(valid, dtype=torch.float32),
        vertices=torch.tensor(verts, dtype=torch.float32),
        joints_3d=torch.tensor(joints, dtype=torch.float32),
        joints_2d=torch.tensor(j2d, dtype=torch.float32),
        mano_pose=torch.zeros(2, 16, 3),
        mano_betas=torch.zeros(2, 10),
        mano_transl=torch.tensor(TRANSL, dtype=torch.float32),
        scores=torch.tensor([0.9, 0.6]))
    if with_boxes:  # the boxes of the meshes
        uvw = verts @ K.T
        uv = uvw[..., :2] / uvw[..., 2:]
        fields['bboxes'] = torch.tensor(
            np.c_[uv.min(1) - 2, uv.max(1) + 2], dtype=torch.float32)
    assert set(fields) <= set(HAND_FIELDS)
    meta = dict(
        img_shape=(H, W),
        ori_shape=(H, W),
        cam_intrinsics=K.astype(np.float32),
        img_path='hand_made.png')
    assert set(meta) <= set(META_FIELDS)
    sample = HandDataSample(metainfo=meta)
    sample.pred_hands = InstanceData(**fields)
    return sample


def test_hand_instances_from_pred_hands():
    sample = _sample(valid=(1, 1), with_boxes=False)
    inst, pairs = hand_instances(sample)
    assert set(inst.keys()) <= set(INSTANCE_FIELDS)
    assert inst.labels.tolist() == [0, 1]
    assert inst.pair_ids.tolist() == [0, 0]
    assert inst.refined.tolist() == [False, False]
    np.testing.assert_allclose(inst.bbox_scores, [0.9, 0.6])
    j2d = sample.pred_hands.joints_2d.numpy()
    np.testing.assert_allclose(
        inst.bboxes.numpy(), np.c_[j2d.min(1), j2d.max(1)], rtol=1e-6)
    joints = sample.pred_hands.joints_3d.double().numpy()
    (pair, ) = pairs
    assert (pair['right'], pair['left']) == (0, 1)
    assert pair['score'] == pytest.approx(0.75)
    np.testing.assert_allclose(pair['rel_transl'],
                               joints[1, 0] - joints[0, 0])
    # only the left hand: one row, label 1, a pair without a right hand
    inst, pairs = hand_instances(_sample(valid=(0, 1)))
    assert inst.labels.tolist() == [1] and len(inst.vertices) == 1
    assert pairs == [dict(right=-1, left=0, score=pytest.approx(0.6),
                          rel_transl=None)]
    # no hands: no rows, no pairs
    inst, pairs = hand_instances(_sample(valid=(0, 0)))
    assert len(inst.labels) == 0 and pairs == []
    # pred_instances are read as they are
    sample = _sample()
    sample.pred_instances = InstanceData(labels=torch.tensor([1]))
    sample.set_metainfo(dict(pairs=[dict(right=-1, left=0, score=0.5)]))
    inst, pairs = hand_instances(sample)
    assert inst is sample.pred_instances and pairs[0]['score'] == 0.5
    with pytest.raises(KeyError, match='neither pred_instances'):
        hand_instances(HandDataSample())


def test_prediction_to_dict_reads_documented_fields():
    result = prediction_to_dict(_sample(valid=(1, 0)), 'hand_made',
                                'hand_made.png')
    validate_result(result)
    (hand, ) = result['hands']
    assert hand['handedness'] == 'right' and hand['score'] == 0.9
    assert hand['pair_id'] == 0 and not hand['refined']
    np.testing.assert_allclose(hand['mano']['transl'], TRANSL[0], atol=1e-6)
    assert result['pairs'] == [
        dict(right=0, left=None, score=0.9, rel_transl=None)
    ]
    assert result['camera'] == dict(intrinsics=K.tolist(), assumed=False)
    assert result['timing_ms']['detector'] is None
    # a missing field is named
    sample = _sample()
    del sample.pred_hands.mano_betas
    with pytest.raises(KeyError, match='mano_betas'):
        prediction_to_dict(sample, 'x')


def test_visualizer_panels_from_a_hand_made_sample(tmp_path):
    vis = TwoHandLocalVisualizer(name='test_image_panels')
    image = np.full((H, W, 3), 40, np.uint8)
    sample = _sample(valid=(1, 1))
    drawn = vis.add_datasample(
        'hand_made',
        image,
        sample,
        draw_gt=False,
        panels=IMAGE_PANELS,
        out_file=str(tmp_path / 'hand_made.png'))
    assert list(drawn) == ['overlay', 'side']
    overlay, side = drawn['overlay'], drawn['side']
    assert overlay.shape == side.shape == (H, W, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'hand_made_overlay.png', 'hand_made_side.png'
    ]
    # meshes and boxes inside the boxes' rows, labels just above / below
    changed = (overlay != 40).any(-1)
    boxes = sample.pred_hands.bboxes.numpy()
    rows = np.nonzero(changed.any(1))[0]
    assert changed.sum() > 200
    assert boxes[:, 1].min() - 20 <= rows.min() < boxes[:, 1].min()
    assert boxes[:, 3].max() < rows.max() <= boxes[:, 3].max() + 20
    # skin tone over the right hand's box centre, blue over the left's
    for hand, channel in ((0, 0), (1, 2)):
        x1, y1, x2, y2 = boxes[hand]
        u = int((x1 + x2) / 2)
        col = overlay[int(y1):int(y2), u - 2:u + 3].reshape(-1, 3)
        hit = col[(col != 40).any(-1)]
        assert len(hit) and (hit[:, channel] >= hit.max(-1)).mean() > 0.9
    assert ((side != 255).any(-1)).sum() > 200
    # the apis' BGR front end draws the same picture
    inst, _ = hand_instances(sample)
    bgr = draw_overlay(image[..., ::-1], inst.vertices.numpy(),
                       inst.labels.numpy(), vis.faces, K,
                       inst.bboxes.numpy(), inst.bbox_scores.numpy(), None)
    np.testing.assert_array_equal(bgr[..., ::-1], overlay)
    side_bgr = draw_side_view(inst.vertices.numpy(), inst.labels.numpy(),
                              vis.faces, (H, W))
    np.testing.assert_array_equal(side_bgr[..., ::-1], side)
    # downscaled: half the size
    small = vis.draw_image_panels(image, sample, ('overlay', ), max_side=80)
    assert small['overlay'].shape == (60, 80, 3)


def test_visualizer_panels_without_hands():
    vis = TwoHandLocalVisualizer(name='test_image_panels_none')
    image = np.full((H, W, 3), 40, np.uint8)
    drawn = vis.draw_image_panels(image, _sample(valid=(0, 0)))
    np.testing.assert_array_equal(drawn['overlay'], image)
    side = drawn['side']
    assert (side[H // 2:] == 255).all()  # blank but for the caption
    assert (side != 255).any()
    # draw_pred=False: the image alone
    drawn = vis.draw_image_panels(image, _sample(), ('overlay', ),
                                  draw_pred=False)
    np.testing.assert_array_equal(drawn['overlay'], image)
    with pytest.raises(ValueError, match='unknown panels'):
        vis.draw_image_panels(image, _sample(), ('front', ))


def test_mesh_overlay_box_colours_follow_handedness():
    image = np.zeros((H, W, 3), np.uint8)
    boxes = np.array([[10.0, 30, 60, 90], [90, 30, 140, 90]])
    out = draw_mesh_overlay(image, None, np.array([0, 1]), None, K, boxes,
                            None, None, box_colors=((255, 0, 0),
                                                    (0, 0, 255)))
    # the left edge of each box in its colour
    assert out[60, 10, 0] > 200 and out[60, 10, 1:].max() == 0
    assert out[60, 90, 2] > 200 and out[60, 90, :2].max() == 0
    assert out[60, 40].max() == 0  # inside: untouched
