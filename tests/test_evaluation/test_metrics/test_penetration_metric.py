# Copyright (c) mmhand2p contributors. All rights reserved.
"""PenetrationMetric on bundled hands that touch or are pushed together."""
import json

import numpy as np
import pytest
import torch

from mmhand2p.evaluation.functional import (MeshTopology, closed_hand_faces,
                                            penetration_depth,
                                            penetration_volume)
from mmhand2p.evaluation.metrics import PenetrationMetric
from mmhand2p.utils.geometry import mirror_axis_angle


@pytest.fixture(scope='module')
def frames():
    """Palm-to-palm hands of the bundled model touching at one point (see
    test_penetration.py), then pushed together by 0 / 3 / 6 mm."""
    from mmhand2p.models.body_models import MANOLayer
    layer = MANOLayer()
    g = torch.Generator().manual_seed(5)
    pose = torch.zeros(1, 16, 3)
    pose[:, 1:] = 0.2 * torch.randn(1, 15, 3, generator=g)
    with torch.no_grad():
        v = layer(pose=torch.stack([pose, mirror_axis_angle(pose)],
                                   1)).vertices[0].double()
    right = v[0]
    left = v[1] * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)
    left[:, 1] += 2 * right[:, 1].min()
    pushes = [0.0, 0.003, 0.006]
    verts = [
        torch.stack([right, left + torch.tensor([0, d, 0.0])]) +
        torch.tensor([0, 0, 0.5]) for d in pushes
    ]
    return dict(verts=verts, faces=layer.faces.numpy(), pushes=pushes)


def samples_of(frames):
    out = []
    for i, v in enumerate(frames['verts']):
        out.append(
            dict(
                img_path=f'capture1/frame_{i}.jpg',
                hand_type='interacting',
                gt_hands=dict(hand_valid=torch.ones(2, dtype=torch.bool)),
                pred_hands=dict(vertices=v)))
    # a single-hand frame is not evaluated by default
    out.append(
        dict(
            img_path='capture1/single.jpg',
            hand_type='right',
            pred_hands=dict(vertices=frames['verts'][2])))
    return out


def reference(frames):
    """PenVol / PenDist of the frames with the functional API."""
    faces = frames['faces']
    closed = []
    for h in range(2):
        fc, loops = closed_hand_faces(faces[h])
        v = torch.stack(frames['verts'])[:, h].numpy()
        cent = np.stack([v[:, loop].mean(1) for loop in loops], 1)
        closed.append((np.concatenate([v, cent], 1), fc))
    (va, fa), (vb, fb) = closed
    vols, _, ia, ib = penetration_volume(va, fa, vb, fb, return_inside=True)
    q = torch.arange(va.shape[1]) < 778
    da, db = penetration_depth(va, vb, MeshTopology(fa), MeshTopology(fb), q,
                               q, torch.as_tensor(ia), torch.as_tensor(ib))
    depth = torch.cat([da, db], 1) * 1000
    return vols * 1e6, depth


@pytest.mark.parametrize('num_workers, inside_test', [(0, 'boolean'),
                                                      (2, 'boolean'),
                                                      (0, 'winding')])
def test_metric_values(frames, tmp_path, num_workers, inside_test):
    out = tmp_path / 'pen.json'
    metric = PenetrationMetric(
        num_workers=num_workers,
        min_pairs_for_pool=1,
        inside_test=inside_test,
        out_file=str(out))
    samples = samples_of(frames)
    metric.process(None, samples[:2])  # pipelined: one batch in flight
    metric.process(None, samples[2:])
    res = metric.evaluate(len(samples))
    vols, depth = reference(frames)
    assert vols[0] < 1e-3 and vols[1] > 0 and vols[2] > vols[1]
    pen = depth > 0
    mean = [(depth[i][pen[i]].mean().item() if pen[i].any() else 0.0)
            for i in range(3)]
    dmax = depth.amax(1)
    assert dmax[0] < 1e-3  # touching: ~0 mm
    assert 0 < dmax[1] <= 3.0 and 0 < dmax[2] <= 6.0  # <= the push
    assert res['penetration/num_frames'] == 3
    assert res['penetration/PenVol'] == pytest.approx(vols.mean(), rel=1e-9)
    assert res['penetration/PenRatio'] == pytest.approx(2 / 3)
    assert res['penetration/PenVol_pen'] == pytest.approx(
        vols[1:].mean(), rel=1e-9)
    assert res['penetration/PenDist_max'] == pytest.approx(
        dmax.mean().item(), rel=1e-5)
    assert res['penetration/PenDist_mean'] == pytest.approx(
        np.mean(mean), rel=1e-5)
    assert res['penetration/PenDist_mean_pen'] == pytest.approx(
        np.mean(mean[1:]), rel=1e-5)
    assert json.loads(out.read_text())['metrics']['num_frames'] == 3
    assert metric._pool is None  # workers stopped after evaluation


def test_uncapped_meshes_raise_naming_the_sample(frames):
    metric = PenetrationMetric(num_workers=0, cap_holes=False)
    with pytest.raises(ValueError, match=r'capture1/frame_0\.jpg.*not closed'):
        metric.process(None, samples_of(frames))


def test_bad_input():
    with pytest.raises(ValueError, match="'boolean' or 'winding'"):
        PenetrationMetric(inside_test='sdf')
    with pytest.raises(ValueError, match='interacting'):
        PenetrationMetric(frames='some')
    metric = PenetrationMetric(num_workers=0)
    with pytest.raises(
            KeyError, match=r'img_path=x\.jpg.*pred_hands\.'
            'vertices'):
        metric.process(
            None,
            [dict(img_path='x.jpg', hand_type='interacting', pred_hands={})])
    with pytest.raises(ValueError, match=r'\(2, V, 3\)'):
        metric.process(None, [
            dict(
                img_path='y.jpg',
                hand_type='interacting',
                pred_hands=dict(vertices=torch.zeros(778, 3)))
        ])


def test_before_and_after_refinement_in_one_run(frames):
    """pred_hands.vertices (refined: touching) and unrefined_vertices (the
    stage-1 meshes: pushed 6 mm together) are evaluated separately."""
    samples = [
        dict(img_path='a.jpg', hand_type='interacting',
             gt_hands=dict(hand_valid=torch.ones(2, dtype=torch.bool)),
             pred_hands=dict(vertices=frames['verts'][0],
                             unrefined_vertices=frames['verts'][2]))
    ]
    after = PenetrationMetric(num_workers=0)
    before = PenetrationMetric(
        num_workers=0, vertices_key='unrefined_vertices',
        prefix='penetration_unrefined')
    for m in (after, before):
        m.process(None, samples)
    res_after, res_before = after.evaluate(1), before.evaluate(1)
    vols, _ = reference(frames)
    assert res_after['penetration/PenVol'] < 1e-3
    assert res_before['penetration_unrefined/PenVol'] == pytest.approx(
        vols[2], rel=1e-9)
