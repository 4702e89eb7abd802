# Copyright (c) mmhand2p contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmhand2p.utils.geometry import (axis_angle_to_matrix, axis_angle_to_rot6d,
                                     matrix_to_axis_angle,
                                     matrix_to_quaternion, matrix_to_rot6d,
                                     mirror_axis_angle, mirror_matrix,
                                     mirror_points, procrustes_align,
                                     project_points, quaternion_to_matrix,
                                     rot6d_to_axis_angle, rot6d_to_matrix,
                                     swap_hands)

finite = st.floats(-1.0, 1.0, allow_nan=False, width=64)


def _axis_angles(max_angle=math.pi - 1e-3):
    """Axis-angle vectors with angle in [0, max_angle]."""
    return st.tuples(
        arrays(np.float64, 3, elements=finite).filter(
            lambda v: np.linalg.norm(v) > 1e-3),
        st.floats(0.0, max_angle)).map(
            lambda t: torch.tensor(t[0] / np.linalg.norm(t[0]) * t[1]))


def test_axis_angle_known_values():
    # 90 deg about z maps x to y
    r = axis_angle_to_matrix(torch.tensor([0, 0, math.pi / 2]))
    assert torch.allclose(r @ torch.tensor([1.0, 0, 0]),
                          torch.tensor([0.0, 1, 0]), atol=1e-6)
    assert torch.allclose(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


def test_axis_angle_gradient_finite_at_zero():
    aa = torch.zeros(4, 3, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


@pytest.mark.parametrize('angle', [0.0, 1e-9, 0.5, math.pi - 1e-4, math.pi])
def test_inverse_maps_have_finite_gradients(angle):
    """Regressors start at the identity 6D rotation: the way back to
    axis-angle must not produce NaN gradients there (nor at pi)."""
    aa = torch.tensor([[angle, 0.0, 0.0], [0.0, angle, 0.0]],
                      dtype=torch.float64)
    r6 = axis_angle_to_rot6d(aa).requires_grad_(True)
    out = rot6d_to_axis_angle(r6)
    out.sum().backward()
    assert torch.isfinite(r6.grad).all()
    mat = axis_angle_to_matrix(aa).requires_grad_(True)
    matrix_to_axis_angle(mat).sum().backward()
    assert torch.isfinite(mat.grad).all()
    # and the gradient is the right one away from the singular points
    if 0.1 < angle < 3.0:
        r6d = axis_angle_to_rot6d(aa).requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda x: rot6d_to_axis_angle(x), (r6d, ))


@settings(max_examples=60, deadline=None)
@given(_axis_angles())
def test_axis_angle_matrix_roundtrip(aa):
    r = axis_angle_to_matrix(aa)
    assert torch.allclose(r @ r.T, torch.eye(3, dtype=r.dtype), atol=1e-9)
    assert torch.det(r).item() == pytest.approx(1.0, abs=1e-9)
    assert torch.allclose(matrix_to_axis_angle(r), aa, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(_axis_angles(max_angle=math.pi))
def test_quaternion_roundtrip_near_pi(aa):
    r = axis_angle_to_matrix(aa)
    assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(r)), r,
                          atol=1e-9)
    # axis-angle may flip sign at exactly pi, the rotation may not
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(r)), r,
                          atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(_axis_angles(), arrays(np.float64, 6, elements=finite))
def test_rot6d_roundtrip_and_projection(aa, noise):
    r = axis_angle_to_matrix(aa)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(r)), r, atol=1e-9)
    assert torch.allclose(axis_angle_to_rot6d(aa), matrix_to_rot6d(r))
    # any (non-degenerate) 6D vector maps to a proper rotation
    r2 = rot6d_to_matrix(matrix_to_rot6d(r) + 0.3 * torch.tensor(noise))
    assert torch.allclose(r2 @ r2.T, torch.eye(3, dtype=r2.dtype), atol=1e-9)
    assert torch.det(r2).item() == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(_axis_angles(), arrays(np.float64, (5, 3), elements=finite))
def test_mirror_is_conjugation(aa, pts):
    pts = torch.tensor(pts)
    r = axis_angle_to_matrix(aa)
    # mirror(R) applied to mirrored points == mirror of rotated points
    lhs = mirror_points(pts) @ axis_angle_to_matrix(mirror_axis_angle(aa)).T
    assert torch.allclose(lhs, mirror_points(pts @ r.T), atol=1e-9)
    assert torch.allclose(mirror_matrix(r),
                          axis_angle_to_matrix(mirror_axis_angle(aa)),
                          atol=1e-9)
    # involutions
    assert torch.equal(mirror_axis_angle(mirror_axis_angle(aa)), aa)
    assert torch.equal(mirror_points(mirror_points(pts)), pts)


def test_swap_hands():
    x = torch.arange(12.).reshape(3, 2, 2)
    assert torch.equal(swap_hands(x)[:, 0], x[:, 1])
    assert torch.equal(swap_hands(swap_hands(x)), x)
    with pytest.raises(ValueError, match='size 2'):
        swap_hands(torch.zeros(3, 3))


def test_project_points_known_values():
    k = torch.tensor([[500.0, 0, 320], [0, 400.0, 240], [0, 0, 1]])
    p = torch.tensor([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0]])
    uv = project_points(p, k)
    assert torch.allclose(uv, torch.tensor([[345.0, 200.0], [320.0, 240.0]]))
    uvd = project_points(p[None], k[None], return_depth=True)
    assert torch.allclose(uvd[0, :, 2], p[:, 2])


@settings(max_examples=40, deadline=None)
@given(_axis_angles(), st.floats(0.2, 5.0),
       arrays(np.float64, 3, elements=finite),
       arrays(np.float64, (21, 3), elements=finite))
def test_procrustes_recovers_similarity(aa, scale, trans, pts):
    x = torch.tensor(pts)[None]
    if torch.linalg.matrix_rank(x[0] - x[0].mean(0)) < 3:
        return  # degenerate (planar) point sets have no unique rotation
    r = axis_angle_to_matrix(aa)
    y = scale * x @ r.T + torch.tensor(trans)
    aligned, (s, rot, t) = procrustes_align(x, y)
    assert torch.allclose(aligned, y, atol=1e-8)
    assert s.item() == pytest.approx(scale, rel=1e-8)
    assert torch.allclose(rot[0], r, atol=1e-7)
    # without scale: the residual of a scaled copy is not zero
    aligned_rigid, (s1, _, _) = procrustes_align(x, y, scale=False)
    assert s1.item() == 1.0
    if abs(scale - 1) > 0.05:
        assert (aligned_rigid - y).norm() > 1e-3


def test_procrustes_mask_ignores_outliers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 10, 3, generator=g, dtype=torch.float64)
    r = axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.5], dtype=x.dtype))
    y = x @ r.T + 1.0
    y[:, 0] += 10.0  # an outlier, masked out
    mask = torch.ones(2, 10)
    mask[:, 0] = 0
    aligned, _ = procrustes_align(x, y, mask=mask)
    assert torch.allclose(aligned[:, 1:], y[:, 1:], atol=1e-8)
    # no reflection even for a mirrored target
    _, (_, rot, _) = procrustes_align(x, mirror_points(x))
    assert torch.allclose(torch.det(rot), torch.ones(2, dtype=x.dtype))
