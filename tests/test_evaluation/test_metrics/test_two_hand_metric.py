# Copyright (c) mmhand2p contributors. All rights reserved.
"""TwoHandMetric on samples whose errors are known by construction."""
import json
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.evaluation.metrics import TwoHandMetric
from mmhand2p.structures import HandDataSample

# identity regressor: with 21 "vertices" per hand equal to the joints, the
# joints regressed from the mesh are the joints themselves
IDENTITY = np.stack([np.eye(21)] * 2)
K = np.array([[1000.0, 0, 500], [0, 1000, 400], [0, 0, 1]])


def line_hand(offset=(0.0, 0.0, 0.5)):
    """Joint j at (0.01 j, 0, 0) + offset: joint j is 0.01 j from the
    wrist."""
    j = np.arange(21, dtype=np.float64)
    return np.stack([0.01 * j, np.zeros(21), np.zeros(21)], -1) + offset


def two_hands(z=0.5):
    return np.stack([line_hand((0, 0, z)), line_hand((0, 0.05, z))])


def sample(gt,
           pred,
           hand_type,
           hand_valid=(True, True),
           verts=False,
           k=None,
           name='img.jpg'):
    valid = np.repeat(np.asarray(hand_valid, dtype=np.float64)[:, None], 21, 1)
    s = dict(
        img_path=name,
        hand_type=hand_type,
        gt_hands=dict(
            joints_3d=torch.as_tensor(gt),
            joints_3d_valid=torch.as_tensor(valid),
            hand_valid=torch.as_tensor(np.asarray(hand_valid))),
        pred_hands=dict(joints_3d=torch.as_tensor(pred)))
    if verts:
        s['gt_hands']['vertices'] = torch.as_tensor(gt)
        s['gt_hands']['mano_valid'] = torch.as_tensor(np.asarray(hand_valid))
        s['pred_hands']['vertices'] = torch.as_tensor(pred)
    if k is not None:
        s['cam_intrinsics'] = k
    return s


def run(protocol, samples, **kwargs):
    kwargs.setdefault('joint_regressor', IDENTITY)
    metric = TwoHandMetric(protocol=protocol, out_file=None, **kwargs)
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


def moved(gt, hand, joint, offset):
    pred = gt.copy()
    pred[hand, joint] += offset
    return pred


@pytest.fixture
def sh_ih_samples():
    gt = two_hands()
    garbage = gt + 1.0  # for absent hands: must not count
    s0 = moved(gt, 0, 5, [0.003, 0, 0])
    s0[1] = garbage[1]
    s1 = moved(gt, 1, 5, [0.006, 0, 0])
    s1[0] = garbage[0]
    s2 = moved(moved(gt, 0, 5, [0.009, 0, 0]), 1, 5, [0.012, 0, 0])
    s3 = gt.copy()
    s3[1] = garbage[1]
    return [
        sample(gt, s0, 'right', (True, False)),
        sample(gt, s1, 'left', (False, True)),
        sample(gt, s2, 'interacting'),
        sample(gt, s3, 'right', (True, False)),
    ]


def test_interwild_aggregation_by_hand(sh_ih_samples):
    m = run('interwild', sh_ih_samples)
    # per-joint means over samples: SH right j5 (3 + 0) / 2, SH left j5 6,
    # IH right j5 9, left j5 12, every other joint 0
    assert m['MPJPE_SH'] == pytest.approx(7.5 / 42)
    assert m['MPJPE_IH'] == pytest.approx(21 / 42)
    assert m['MPJPE_all'] == pytest.approx((7.5 + 21) / 84)
    assert m['num_SH'] == 3 and m['num_IH'] == 1 and m['num_all'] == 4


@pytest.mark.parametrize('protocol', ['mmpose', 'a2p'])
def test_pooled_aggregation_by_hand(sh_ih_samples, protocol):
    m = run(protocol, sh_ih_samples)
    # every valid joint once: SH 63 joints summing to 9 mm, IH 42 to 21
    assert m['MPJPE_SH'] == pytest.approx(9 / 63)
    assert m['MPJPE_IH'] == pytest.approx(21 / 42)
    assert m['MPJPE_all'] == pytest.approx(30 / 105)
    assert m['PA-MPJPE_all'] >= 0


def test_mrrpe_frames_differ_between_protocols():
    gt = two_hands()
    ih = gt.copy()
    ih[1] += [0.01, 0, 0]  # left hand 10 mm off, as a whole
    sh = gt.copy()
    sh[1] += [0, 0.02, 0]  # a "right" frame with both wrists valid
    samples = [sample(gt, ih, 'interacting'), sample(gt, sh, 'right')]
    iw, mp = run('interwild', samples), run('mmpose', samples)
    assert iw['MRRPE'] == pytest.approx(15.0)  # both frames
    assert mp['MRRPE'] == pytest.approx(10.0)  # interacting frames only
    # root alignment removes the translation of each hand
    assert iw['MPJPE_all'] == pytest.approx(0, abs=1e-9)
    assert mp['MPJPE_all'] == pytest.approx(0, abs=1e-9)


def test_scaled_hands_under_scaling_and_plain_protocols():
    gt = two_hands()
    pred = gt[:, :1] + 1.5 * (gt - gt[:, :1])  # 1.5x about each wrist
    samples = [sample(gt, pred, 'interacting', verts=True)]
    for protocol in ('intaghand', 'dir'):
        m = run(protocol, samples)
        assert m['MPJPE_all'] == pytest.approx(0, abs=1e-9), protocol
        assert m['MPVPE_all'] == pytest.approx(0, abs=1e-9), protocol
    for protocol in ('a2p', 'mmpose', 'interwild'):
        m = run(protocol, samples)
        # joint j off by 0.5 * 0.01 j; mean over j = 0..20: 50 mm
        assert m['MPJPE_all'] == pytest.approx(50.0), protocol
        assert m['MPVPE_all'] == pytest.approx(50.0), protocol
        assert m['PA-MPJPE_all'] == pytest.approx(0, abs=1e-6), protocol
        assert m['PA-MPVPE_all'] == pytest.approx(0, abs=1e-6), protocol
        assert m['MRRPE'] == pytest.approx(0, abs=1e-9)
    # IntagHand's root is the middle MCP: without scaling the error would
    # be 0.005 |j - 9| per joint, 111 * 5 / 21 mm on average
    m = run(dict(type='intaghand', bone_scaling=False), samples)
    assert m['MPJPE_all'] == pytest.approx(111 * 5 / 21)


def test_xy_z_split_pck_auc_and_miaa():
    gt = two_hands(z=1.0)
    pred = moved(gt, 0, 5, [0.003, 0.004, 0.012])
    m = run(
        'a2p', [sample(gt, pred, 'interacting', verts=True, k=K)],
        pck_thresholds=(10, 20))
    assert m['MPJPE_all'] == pytest.approx(13 / 42)
    assert m['MPJPE-XY_all'] == pytest.approx(5 / 42)
    assert m['MPJPE-Z_all'] == pytest.approx(12 / 42)
    assert m['MPVPE-XY_all'] == pytest.approx(5 / 42)
    assert m['PCK@10mm'] == pytest.approx(41 / 42)
    assert m['PCK@20mm'] == pytest.approx(1.0)
    assert m['AUC_all'] == pytest.approx((41 + 37 / 50) / 42)
    assert math.isnan(m['MPJPE_SH'])  # no single-hand frame
    # a whole hand 3 mm right and 4 mm down at depth 1 m: 5 px at f = 1000
    shifted = gt + [0.003, 0.004, 0.0]
    sm = [sample(gt, shifted, 'interacting', verts=True, k=K)]
    m = run('a2p', sm)
    assert m['MIAA_all'] == pytest.approx(5.0)
    assert m['MPJPE_all'] == pytest.approx(0, abs=1e-9)
    # DIR places the aligned prediction at the GT root before projecting
    assert run('dir', sm)['MIAA_all'] == pytest.approx(0, abs=1e-9)


def test_mmengine_evaluate_json_and_prefix(tmp_path, sh_ih_samples):
    out = tmp_path / 'report.json'
    metric = TwoHandMetric(
        protocol='mmpose', joint_regressor=IDENTITY, out_file=str(out))
    metric.process(None, sh_ih_samples[:2])
    metric.process(None, sh_ih_samples[2:])
    res = metric.evaluate(4)
    assert res['two_hand/MPJPE_all'] == pytest.approx(30 / 105)
    report = json.loads(out.read_text())
    assert report['protocol']['name'] == 'mmpose'
    assert report['metrics']['MPJPE_SH'] == pytest.approx(9 / 63)
    assert report['num_samples'] == 4
    assert metric.results == []


def test_hand_data_samples_and_bundled_mano_regressor():
    """Default interwild protocol: mesh roots by the bundled MANO joint
    regressor; hands translated as a whole have no error."""
    from mmhand2p.models.body_models import MANOLayer
    layer = MANOLayer()
    g = torch.Generator().manual_seed(0)
    pose = 0.2 * torch.randn(2, 2, 16, 3, generator=g)
    with torch.no_grad():
        out = layer(
            pose=pose,
            transl=torch.tensor([[0.0, 0, 0.5], [0.1, 0,
                                                 0.5]]).expand(2, 2, 3))
    samples = []
    for i in range(2):
        ds = HandDataSample(
            metainfo=dict(
                img_path=f'{i}.jpg',
                hand_type='interacting',
                cam_intrinsics=torch.as_tensor(K)))
        ds.gt_hands = InstanceData(
            joints_3d=out.joints[i],
            vertices=out.vertices[i],
            hand_valid=torch.ones(2, dtype=torch.bool),
            mano_valid=torch.ones(2, dtype=torch.bool))
        t = torch.tensor([[0.01, 0.0, 0.0], [0.0, -0.02, 0.03]])
        ds.pred_hands = InstanceData(
            joints_3d=out.joints[i] + t[:, None],
            vertices=out.vertices[i] + t[:, None])
        samples.append(ds)
    metric = TwoHandMetric()  # interwild, bundled MANO
    metric.process(None, samples)
    m = metric.compute_metrics(metric.results)
    for key in ('MPJPE_all', 'MPVPE_all', 'PA-MPJPE_all', 'PA-MPVPE_all'):
        assert m[key] == pytest.approx(0, abs=1e-3), key
    # relative root moved by (0, -0.02, 0.03) - (0.01, 0, 0)
    assert m['MRRPE'] == pytest.approx(
        1000 * math.sqrt(0.01**2 + 0.02**2 + 0.03**2), rel=1e-4)


def test_bad_input_is_named():
    gt = two_hands()
    with pytest.raises(
            ValueError,
            match=r'pred_hands\.joints_3d.*'
            r'\(2, 21, 3\).*\(2, 20, 3\)'):
        run('mmpose', [sample(gt, gt[:, :20], 'interacting')])
    with pytest.raises(
            ValueError, match="'both'.*'interacting', 'left', "
            "'right'"):
        run('mmpose', [sample(gt, gt, 'both')])
    bad = sample(gt, gt, 'interacting', verts=True)
    bad['pred_hands']['vertices'] = torch.zeros(2, 20, 3)
    with pytest.raises(ValueError, match='differ in shape'):
        run('mmpose', [bad])
    with pytest.raises(KeyError, match='joints_3d'):
        run('mmpose', [dict(hand_type='right', gt_hands={}, pred_hands={})])
    with pytest.raises(KeyError, match="'intaghand' regresses the joints"):
        run('intaghand', [sample(gt, gt, 'interacting')])


def test_unrefined_predictions_through_pred_keys():
    """Refined joints exact, the kept stage-1 joints 10 mm off on one
    joint of 42: MPJPE 0 for the default keys, 10/42 mm for pred_keys."""
    gt = two_hands()
    s = sample(gt, gt, 'interacting')
    s['pred_hands']['unrefined_joints_3d'] = torch.as_tensor(
        moved(gt, 0, 5, (0.0, 0.0, 0.01)))
    after = run('interwild', [s])
    before = run('interwild', [s],
                 pred_keys=('unrefined_joints_3d', 'unrefined_vertices'))
    assert after['MPJPE_all'] == pytest.approx(0.0, abs=1e-9)
    assert before['MPJPE_IH'] == pytest.approx(10.0 / 42, rel=1e-6)
