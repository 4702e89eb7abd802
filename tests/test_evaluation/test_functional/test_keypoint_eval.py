# Copyright (c) mmhand2p contributors. All rights reserved.
"""Keypoint / vertex error functions against values worked out by hand."""
import math

import numpy as np
import pytest
import torch

from mmhand2p.evaluation.functional import (auc, bone_length_scale,
                                            masked_mean, mpjpe, mrrpe, pck,
                                            pck_curve_auc, point_errors,
                                            procrustes_aligned_errors,
                                            projected_point_errors,
                                            regress_joints, relative_root,
                                            root_aligned_errors)
from mmhand2p.utils.geometry import axis_angle_to_matrix


def line_hand():
    """21 joints on the x axis, joint j at (0.01 j, 0, 0.5) m: the distance
    of joint j to the wrist is 0.01 j."""
    j = torch.arange(21, dtype=torch.float64)
    return torch.stack([0.01 * j,
                        torch.zeros(21),
                        torch.full((21, ), 0.5)], -1)


def random_hand(seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(21, 3, generator=g, dtype=torch.float64)


def test_translated_hand_has_zero_root_aligned_error():
    gt = random_hand()
    pred = gt + torch.tensor([0.03, -0.02, 0.1], dtype=torch.float64)
    assert mpjpe(pred, gt, root_index=0).item() == pytest.approx(0, abs=1e-12)
    assert mpjpe(pred, gt, root_index=9).item() == pytest.approx(0, abs=1e-12)
    # without alignment the error is the translation's length
    t = torch.tensor([0.003, 0.004, 0.0], dtype=torch.float64)
    assert mpjpe(gt + t, gt, root_index=None).item() == pytest.approx(0.005)


def test_scaled_hand_bone_scaling_and_known_value_without():
    gt = line_hand()
    # the prediction is 1.5x the GT hand, scaled about the wrist
    pred = gt[0] + 1.5 * (gt - gt[0])
    scale, valid = bone_length_scale(pred, gt)
    assert valid.item() and scale.item() == pytest.approx(1 / 1.5)
    assert mpjpe(pred, gt, root_index=0, bone_scaling=True).item() == \
        pytest.approx(0, abs=1e-12)
    assert mpjpe(pred, gt, root_index=9, bone_scaling=True).item() == \
        pytest.approx(0, abs=1e-12)
    # no scaling: joint j is off by 0.5 * 0.01 j; mean over j = 0..20 of
    # 0.005 j = 0.005 * 10 = 0.05 m
    assert mpjpe(pred, gt, root_index=0).item() == pytest.approx(0.05)
    # middle-MCP root: joint j is off by 0.005 |j - 9|;
    # sum_j |j - 9| = (9 + 8 + ... + 0) + (1 + ... + 11) = 45 + 66 = 111
    assert mpjpe(
        pred, gt, root_index=9).item() == pytest.approx(0.005 * 111 / 21)


def test_procrustes_of_rotated_scaled_copy_is_zero():
    gt = random_hand(1)
    rot = axis_angle_to_matrix(
        torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64))
    pred = 2.5 * gt @ rot.T + torch.tensor([1.0, 2.0, 3.0],
                                           dtype=torch.float64)
    err = procrustes_aligned_errors(pred, gt)
    assert err.abs().max().item() < 1e-10
    # a corrupted joint that is masked out does not spoil the fit
    pred[4] += 0.2
    mask = torch.ones(21, dtype=torch.bool)
    mask[4] = False
    err = procrustes_aligned_errors(pred, gt, mask)
    assert err[mask].abs().max().item() < 1e-10
    # the offset (0.2, 0.2, 0.2) is undone by the fitted 1 / 2.5 scale
    assert err[4].item() == pytest.approx(0.2 * math.sqrt(3) / 2.5, rel=1e-9)
    assert procrustes_aligned_errors(
        pred, gt, mask, reduction='mean').item() < 1e-10


def test_procrustes_needs_three_valid_points():
    gt = random_hand(2)
    mask = torch.zeros(21, dtype=torch.bool)
    mask[:2] = True
    assert torch.isnan(procrustes_aligned_errors(gt, gt, mask)).all()


def test_xy_and_z_split():
    gt = line_hand()
    pred = gt.clone()
    pred[5] += torch.tensor([0.003, 0.004, 0.012], dtype=torch.float64)
    e = {
        a: mpjpe(pred, gt, axes=a, reduction='none')
        for a in ('xyz', 'xy', 'z')
    }
    assert e['xyz'][5].item() == pytest.approx(0.013)
    assert e['xy'][5].item() == pytest.approx(0.005)
    assert e['z'][5].item() == pytest.approx(0.012)
    for a, v in (('xyz', 0.013), ('xy', 0.005), ('z', 0.012)):
        assert mpjpe(pred, gt, axes=a).item() == pytest.approx(v / 21)


def test_root_aligned_errors_for_vertices_with_own_roots():
    gt = random_hand(3)
    pred = gt + 1.0
    err = root_aligned_errors(pred, gt, pred[0], gt[0])
    assert err.abs().max().item() < 1e-12
    # scaling applies to the root-relative prediction
    err = root_aligned_errors(
        gt[0] + 2 * (gt - gt[0]),
        gt,
        gt[0],
        gt[0],
        scale=torch.tensor(0.5, dtype=torch.float64))
    assert err.abs().max().item() < 1e-12


def test_mrrpe_sign_convention():
    # right wrist at x = 0, left wrist at x = 0.1: left - right = +0.1 x
    gt = torch.zeros(2, 21, 3, dtype=torch.float64)
    gt[1] += torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    gt += torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    assert relative_root(gt).tolist() == pytest.approx([0.1, 0.0, 0.0])
    # both hands moved together: no relative error
    assert mrrpe(gt + 0.3, gt).item() == pytest.approx(0, abs=1e-12)
    # hands swapped: relative root -0.1 x, error 0.2
    assert mrrpe(gt.flip(0), gt).item() == pytest.approx(0.2)
    # left hand 3 cm too far in depth
    pred = gt.clone()
    pred[1, :, 2] += 0.03
    assert mrrpe(pred, gt).item() == pytest.approx(0.03)
    # masked mean over frames
    batch_p = torch.stack([pred, gt])
    batch_g = torch.stack([gt, gt])
    assert mrrpe(
        batch_p, batch_g, valid=torch.tensor([True, False]),
        reduction='mean').item() == pytest.approx(0.03)


def test_pck_and_auc_by_hand():
    errors = torch.tensor([0.0, 10.0, 25.0, 60.0])
    assert pck(errors,
               [0, 20, 50]).tolist() == pytest.approx([0.25, 0.5, 0.75])
    # each error contributes clip((50 - e) / 50, 0, 1): 1, 0.8, 0.5, 0
    assert auc(errors).item() == pytest.approx(0.575)
    assert auc(errors, min_threshold=20, max_threshold=50).item() == \
        pytest.approx((1 + 1 + 25 / 30 + 0) / 4)
    # the trapezoid rule on a fine grid converges to the exact value
    thr = torch.linspace(0, 50, 50001)
    assert pck_curve_auc(thr, pck(errors, thr)).item() == pytest.approx(
        0.575, abs=1e-4)
    # masks
    mask = torch.tensor([True, True, False, False])
    assert pck(errors, 5, mask).tolist() == pytest.approx([0.5])
    assert auc(errors, mask).item() == pytest.approx(0.9)
    assert math.isnan(auc(errors, torch.zeros(4, dtype=torch.bool)).item())
    with pytest.raises(ValueError, match='max_threshold > min_threshold'):
        auc(errors, min_threshold=50, max_threshold=0)


def test_projected_point_errors_in_pixels():
    k = torch.tensor([[1000.0, 0, 500], [0, 1000, 400], [0, 0, 1]],
                     dtype=torch.float64)
    gt = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.05, 1.0]], dtype=torch.float64)
    pred = gt + torch.tensor([0.003, 0.004, 0.0], dtype=torch.float64)
    assert projected_point_errors(pred, gt,
                                  k).tolist() == pytest.approx([5.0, 5.0])
    # at depth 2 the same offset is half as many pixels
    assert projected_point_errors(pred * torch.tensor([1, 1, 2.0]),
                                  gt * torch.tensor([1, 1, 2.0]),
                                  k).tolist() == pytest.approx([2.5, 2.5])


def test_masked_mean_for_invalid_joints_and_absent_hands():
    err = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # 2 hands
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert masked_mean(err, mask).item() == pytest.approx(1.5)
    assert masked_mean(err, mask, dim=-1)[0].item() == pytest.approx(1.5)
    assert math.isnan(masked_mean(err, mask, dim=-1)[1].item())
    assert math.isnan(masked_mean(err, torch.zeros_like(mask)).item())
    # the root-invalid rule is the caller's: numpy inputs work too
    assert masked_mean(np.array([1.0, 3.0])).item() == pytest.approx(2.0)


def test_regress_joints_per_hand():
    verts = torch.arange(2 * 4 * 3, dtype=torch.float64).reshape(2, 4, 3)
    reg = torch.zeros(2, 2, 4, dtype=torch.float64)
    reg[0, 0, 1] = 1.0  # right joint 0 = vertex 1
    reg[0, 1, :] = 0.25  # right joint 1 = mean
    reg[1, :, 3] = 1.0  # left joints = vertex 3
    j = regress_joints(verts[None], reg)[0]
    assert j[0, 0].tolist() == verts[0, 1].tolist()
    assert j[0, 1].tolist() == pytest.approx(verts[0].mean(0).tolist())
    assert j[1, 1].tolist() == verts[1, 3].tolist()
    with pytest.raises(ValueError, match='does not match'):
        regress_joints(verts, torch.zeros(2, 5))


def test_bad_shapes_and_axes_are_clear_errors():
    with pytest.raises(ValueError, match=r'\(21, 3\) and \(20, 3\)'):
        mpjpe(torch.zeros(21, 3), torch.zeros(20, 3))
    with pytest.raises(ValueError, match="'xyz', 'xy', 'z'"):
        point_errors(torch.zeros(2, 3), torch.zeros(2, 3), axes='yz')
    with pytest.raises(ValueError, match='hand axis 0 = right'):
        relative_root(torch.zeros(3, 21, 3))
    with pytest.raises(ValueError, match="'mean' or 'none'"):
        mpjpe(torch.zeros(21, 3), torch.zeros(21, 3), reduction='sum')
