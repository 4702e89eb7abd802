# Copyright (c) mmhand2p contributors. All rights reserved.
"""The criteria of the hybrid collision loss: the default (GMoF of the
penetration depth) and the pair-distance penalties, A2P's Eq. (3) as
printed (its pole handled) and a standard GMoF of the pair distance."""
import pytest
import torch

from mmhand2p.models.losses.collision import (EQ3_POLE_EPS, eq3_printed,
                                              hybrid_collision, pair_penalty)
from mmhand2p.registry import MODELS


@pytest.fixture(scope='module')
def mano():
    from mmhand2p.models.body_models import MANOLayer
    return MANOLayer()


def _pushed_in(mano, offset=0.036, dtype=torch.float64):
    """Rest hands, the left one's centroid ``offset`` m above the right
    one's along y (penetrating at 36 mm): ``(1, 2, 778, 3)``."""
    pose = torch.zeros(1, 2, 16, 3)
    with torch.no_grad():
        v = mano(pose=pose).vertices
        transl = torch.zeros(1, 2, 3)
        transl[:, 1] = v[:, 0].mean(1) - v[:, 1].mean(1) + torch.tensor(
            [0.0, offset, 0.0])
        return mano(pose=pose, transl=transl).vertices.to(dtype)


def test_eq3_printed_values_and_finite_gradients_across_the_pole():
    """On a grid straddling ``d^2 = rho`` (the pole itself and its float
    neighbours included) the value and its gradient are finite; away from
    the margin it is the printed ``d^2 / (d^2 - rho)``, inside it
    ``d^2 / (+-eps rho)`` with the sign of the side."""
    rho = 2.5e-5
    grid = torch.linspace(0, 2 * rho, 2001, dtype=torch.float64)
    pole = torch.tensor([rho], dtype=torch.float64)
    near = torch.cat([
        pole,
        torch.nextafter(pole, pole * 2),
        torch.nextafter(pole, pole * 0)
    ])
    d2 = torch.cat([grid, near]).requires_grad_(True)
    val = eq3_printed(d2, rho)
    (grad, ) = torch.autograd.grad(val.sum(), d2)
    assert torch.isfinite(val).all() and torch.isfinite(grad).all()
    m = EQ3_POLE_EPS * rho
    d = d2.detach()
    far = (d - rho).abs() >= m
    torch.testing.assert_close(
        val[far].detach(), d[far] / (d[far] - rho), rtol=1e-12, atol=0)
    inside = ~far
    expect = torch.where(d[inside] > rho, d[inside] / m, -d[inside] / m)
    torch.testing.assert_close(
        val[inside].detach(), expect, rtol=1e-12, atol=0)
    # at the pole exactly: the near side, -1/eps
    assert val[len(grid)].item() == pytest.approx(-1 / EQ3_POLE_EPS)
    # bounded by (1 + eps) / eps in magnitude
    assert val.abs().max().item() <= (1 + EQ3_POLE_EPS) / EQ3_POLE_EPS + 1e-9
    # both branches decrease with d^2 (outside the clamped margin)
    assert (grad[far] < 0).all()
    assert grad[0].item() == pytest.approx(-1 / rho)  # d/ds s/(s-rho) at 0
    with pytest.raises(ValueError, match='rho'):
        eq3_printed(d, 0.0)


def test_pair_penalty_values_and_gradient_at_zero_distance():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.003, 0.004, 0.0]],
                     dtype=torch.float64,
                     requires_grad=True)
    y = torch.zeros(2, 3, dtype=torch.float64)
    g = pair_penalty(x, y, 'pair_gmof', 0.01)
    torch.testing.assert_close(
        g.detach(),
        torch.tensor([0.0, 1e-4 * 2.5e-5 / (1e-4 + 2.5e-5)],
                     dtype=torch.float64))
    e = pair_penalty(x, y, 'eq3_printed', 1e-4)
    torch.testing.assert_close(
        e.detach(),
        torch.tensor([0.0, 2.5e-5 / (2.5e-5 - 1e-4)], dtype=torch.float64))
    (gx, ) = torch.autograd.grad((g + e).sum(), x)
    assert torch.isfinite(gx).all()
    assert gx[0].abs().max().item() == 0.0  # coincident: zero gradient
    with pytest.raises(ValueError, match='criterion'):
        pair_penalty(x, y, 'depth', 0.01)


def test_default_criterion_is_unchanged(mano):
    v = _pushed_in(mano)
    faces = mano.faces
    a = MODELS.build(dict(type='HybridCollisionLoss'))
    b = MODELS.build(dict(type='HybridCollisionLoss', criterion='depth_gmof'))
    assert a.criterion == 'depth_gmof'
    assert a(v, faces).item() == b(v, faces).item() > 0
    with pytest.raises(ValueError, match='criterion'):
        MODELS.build(dict(type='HybridCollisionLoss', criterion='eq3'))
    for crit in ('eq3_printed', 'pair_gmof'):
        with pytest.raises(ValueError, match='rho'):
            MODELS.build(
                dict(type='HybridCollisionLoss', criterion=crit,
                     rho=0.0))(v, faces)


def test_pair_criteria_on_real_pairs_match_a_direct_sum(mano):
    """The pair criteria penalise exactly the pairs the default selects
    (plus the selected pairs in front of the surface): recomputed from the
    nearest-vertex pairs, with opposing normals, closer than d_threshold,
    both directions; finite with finite gradients, also with rho placed on
    a pair's squared distance (the pole hit exactly)."""
    from mmhand2p.geometry.normals import face_vertex_normals
    v = _pushed_in(mano)
    faces = mano.faces.long()
    va, vb = v[:, 0], v[:, 1]
    d_thr = 0.005
    _, na = face_vertex_normals(va, faces[0])
    _, nb = face_vertex_normals(vb, faces[1])
    d2 = torch.cdist(va[0], vb[0])**2
    pairs = []  # (query, target, squared distance)
    for q, t, nq, nt, dm in ((va[0], vb[0], na[0], nb[0], d2),
                             (vb[0], va[0], nb[0], na[0], d2.T)):
        dmin, j = dm.min(1)
        ok = (dmin < d_thr**2) & ((nq * nt[j]).sum(-1) < 0)
        pairs.append(((q[ok] - t[j[ok]])**2).sum(-1))
    pd2 = torch.cat(pairs)
    assert len(pd2) > 10
    for rho in (d_thr**2, float(pd2[3])):  # pole at the boundary / on a pair
        res = hybrid_collision(
            va, vb, faces[0], faces[1], d_thr, rho=rho,
            criterion='eq3_printed')
        expect = eq3_printed(pd2, rho).sum()
        assert res.loss.item() == pytest.approx(expect.item(), rel=1e-9)
        assert torch.isfinite(res.loss).all()
    res = hybrid_collision(
        va, vb, faces[0], faces[1], d_thr, rho=0.01, criterion='pair_gmof')
    assert res.loss.item() == pytest.approx(
        (1e-4 * pd2 / (1e-4 + pd2)).sum().item(), rel=1e-9)
    # counts and depths do not depend on the criterion
    ref = hybrid_collision(va, vb, faces[0], faces[1], d_thr)
    assert res.num_pairs.item() == ref.num_pairs.item() > 0
    assert res.max_depth.item() == ref.max_depth.item()
    # gradients finite, through the module, pole hit exactly
    x = v.clone().requires_grad_(True)
    loss = MODELS.build(
        dict(
            type='HybridCollisionLoss',
            rho=float(pd2[3]),
            criterion='eq3_printed'))
    loss(x, mano.faces).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
