# Copyright (c) mmhand2p contributors. All rights reserved.
"""Two-hand collision losses: closed-form values on cubes, touching and
nested surfaces, gradient steps that separate, batching, degenerate meshes
and the pre-filter."""
import math

import numpy as np
import pytest
import torch

from mmhand2p.models.losses import collision as col
from mmhand2p.models.losses.collision import (gmof, hybrid_collision,
                                              inside_collision, vertex_normals)
from mmhand2p.registry import MODELS


def grid_cube(size=0.01, n=8, dtype=torch.float64):
    """Closed cube ``[0, size]^3``, every face an ``n x n`` grid of quads
    split into triangles, outward winding: ``(V, 3)``, ``(F, 3)``."""
    h = size / n
    index, verts, faces = {}, [], []

    def vid(key):
        if key not in index:
            index[key] = len(verts)
            verts.append([k * h for k in key])
        return index[key]

    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for side in (0, n):
            for i in range(n):
                for j in range(n):
                    quad = []
                    for a, b in ((i, j), (i + 1, j), (i + 1, j + 1), (i,
                                                                      j + 1)):
                        key = [0, 0, 0]
                        key[axis], key[u], key[v] = side, a, b
                        quad.append(vid(tuple(key)))
                    faces += [(quad[0], quad[1], quad[2]),
                              (quad[0], quad[2], quad[3])]
    v = np.asarray(verts)
    f = np.asarray(faces)
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = (normal * (tri.mean(1) - size / 2)).sum(1) < 0
    f[inward] = f[inward][:, [0, 2, 1]]
    return torch.as_tensor(v, dtype=dtype), torch.as_tensor(f)


def gmof_np(x, rho):
    return rho**2 * x**2 / (rho**2 + x**2)


@pytest.fixture(scope='module')
def cube():
    return grid_cube()


@pytest.fixture(scope='module')
def mano():
    from mmhand2p.models.body_models import MANOLayer
    return MANOLayer()


def _stacked_hands(mano, offsets, pose=None):
    """Both hands (rest pose or ``pose``) with the left one's centroid at
    the right one's plus ``offsets (B, 3)``: ``(B, 2, 778, 3)``."""
    bsz = len(offsets)
    pose = torch.zeros(bsz, 2, 16, 3) if pose is None else pose
    with torch.no_grad():
        v = mano(pose=pose).vertices
        transl = torch.zeros(bsz, 2, 3)
        transl[:, 1] = v[:, 0].mean(1) - v[:, 1].mean(1) + offsets
        return mano(pose=pose, transl=transl).vertices


def _penvol_cm3(vertices, faces):
    """Exact PenVol (cm^3) of ``(B, 2, V, 3)`` hands, capped."""
    from mmhand2p.evaluation.functional import (closed_hand_faces,
                                                penetration_volume)
    closed = [closed_hand_faces(faces[h].numpy()) for h in range(2)]
    v = vertices.detach().double().numpy()
    caps = [
        np.concatenate(
            [v[:, h]] +
            [v[:, h][:, lp].mean(1, keepdims=True) for lp in closed[h][1]], 1)
        for h in range(2)
    ]
    return penetration_volume(caps[0], closed[0][0], caps[1],
                              closed[1][0])[0] * 1e6


# ---------------------------------------------------------------------------
def test_gmof_values():
    x = torch.tensor([0.0, 0.001, 0.01, 0.1, -0.01], dtype=torch.float64)
    rho = 0.01
    expected = rho**2 * x**2 / (rho**2 + x**2)
    torch.testing.assert_close(gmof(x, rho), expected)
    assert gmof(x, rho)[2] == pytest.approx(rho**2 / 2)  # x = rho
    assert gmof(torch.tensor([1e3], dtype=torch.float64), rho) < rho**2


def test_vertex_normals_of_a_cube(cube):
    v, f = cube
    n = vertex_normals(v, f)
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(v), dtype=v.dtype))
    # a vertex inside the +x face has normal +x; a corner the diagonal
    face_x = ((v[:, 0] == 0.01) & (v[:, 1] > 0) & (v[:, 1] < 0.01) &
              (v[:, 2] > 0) & (v[:, 2] < 0.01))
    torch.testing.assert_close(
        n[face_x],
        torch.tensor([1.0, 0, 0], dtype=v.dtype).expand(int(face_x.sum()), 3))
    corner = (v == 0.01).all(-1)
    assert (n[corner] > 0.5).all()


@pytest.mark.parametrize('delta', [0.001, 0.0005])
def test_cubes_pushed_in_closed_form(cube, delta):
    """Cube B overlaps cube A by ``delta`` along x. Every interior vertex of
    the facing faces ((n - 1)^2 per face) is ``delta`` deep under the other
    cube's face, whose normal opposes its own; edge vertices lie on the other
    cube's side faces (depth 0). Both criteria give exactly
    ``2 (n - 1)^2 GMoF(delta)``."""
    v, f = cube
    vb = v.clone()
    vb[:, 0] += 0.01 - delta
    expected = 2 * 49 * gmof_np(delta, 0.01)
    for fn in (hybrid_collision, inside_collision):
        res = fn(v[None], vb[None], f, f)
        assert res.loss.item() == pytest.approx(expected, rel=1e-9)
        assert res.num_pairs.item() == 2 * 49
        assert res.max_depth.item() == pytest.approx(delta, rel=1e-9)
        assert bool(res.active[0])


@pytest.mark.parametrize('gap', [0.0, 0.0003, 0.002])
def test_touching_or_separated_cubes_give_zero(cube, gap):
    v, f = cube
    vb = v.clone()
    vb[:, 0] += 0.01 + gap
    for fn in (hybrid_collision, inside_collision):
        res = fn(v[None], vb[None], f, f)
        assert res.loss.item() == 0.0 and res.num_pairs.item() == 0


def test_aligned_normals_are_not_contact(cube):
    """A slightly larger cube around A: close pairs with aligned normals.
    The hybrid criterion (opposing normals only) ignores them; the inside
    test sees that A is inside B (0.2 mm under B's faces)."""
    v, f = cube
    vb = (v - 0.005) * 1.04 + 0.005
    assert hybrid_collision(v[None], vb[None], f, f).loss.item() == 0.0
    res = inside_collision(v[None], vb[None], f, f)
    assert res.loss.item() > 0
    assert res.max_depth.item() == pytest.approx(0.0002, rel=1e-6)


def test_gradient_step_separates_cubes(cube):
    v, f = cube
    for fn in (hybrid_collision, inside_collision):
        offset = torch.tensor([0.009, 0.0, 0.0],
                              dtype=v.dtype,
                              requires_grad=True)
        loss = fn(v[None], (v + offset)[None], f, f).loss.sum()
        loss.backward()
        # pushes B along +x (out of A) only
        assert offset.grad[0] < 0
        assert offset.grad[1:].abs().max() < 1e-12 * offset.grad[0].abs()
        moved = offset.detach() - 1e-3 / offset.grad.norm() * offset.grad
        assert moved[0] > 0.009  # overlap (and PenVol = overlap x 1 cm^2)
        after = fn(v[None], (v + moved)[None], f, f).loss.item()
        assert after < loss.item()


def test_mano_hands_touching_give_zero_and_pushed_in_positive(mano):
    """Rest hands stacked along the palm normal (y): at first contact (the
    largest overlap-free offset, found with the exact PenVol) both losses
    are 0; pushed 2 mm further they are positive."""
    faces = mano.faces
    lo, hi = 0.03, 0.06  # penetrating at lo, apart at hi
    for _ in range(12):  # to 7 um
        mid = (lo + hi) / 2
        v = _stacked_hands(mano, torch.tensor([[0.0, mid, 0.0]]))
        if _penvol_cm3(v, faces)[0] > 0:
            lo = mid
        else:
            hi = mid
    touching = _stacked_hands(mano, torch.tensor([[0.0, hi, 0.0]]))
    pushed = _stacked_hands(mano, torch.tensor([[0.0, hi - 0.002, 0.0]]))
    assert _penvol_cm3(touching, faces)[0] == 0
    assert _penvol_cm3(pushed, faces)[0] > 0
    for cls in ('HybridCollisionLoss', 'InsideCollisionLoss'):
        loss = MODELS.build(dict(type=cls))
        assert loss(touching, faces).item() == 0.0
        assert loss(pushed, faces).item() > 0


def test_gradient_step_reduces_mano_penetration(mano):
    """Hands pushed into each other: a gradient step of the loss on the
    left hand's translation reduces the exact penetration volume."""
    faces = mano.faces
    pose = torch.zeros(1, 2, 16, 3)
    with torch.no_grad():
        v = mano(pose=pose).vertices
    base = torch.zeros(1, 2, 3)
    base[:, 1] = v[:, 0].mean(1) - v[:, 1].mean(1) + torch.tensor(
        [0.0, 0.036, 0.0])
    for cls in ('HybridCollisionLoss', 'InsideCollisionLoss'):
        transl = base.clone().requires_grad_(True)
        verts = mano(pose=pose, transl=transl).vertices
        loss = MODELS.build(dict(type=cls))(verts, faces)
        assert loss.item() > 0
        loss.backward()
        step = transl.grad / transl.grad.norm() * 0.002  # 2 mm
        with torch.no_grad():
            after = mano(pose=pose, transl=transl - step).vertices
        before_vol = _penvol_cm3(verts, faces)[0]
        assert 0 < _penvol_cm3(after, faces)[0] < before_vol


def test_batched_equals_per_sample(mano):
    torch.manual_seed(0)
    bsz = 6
    pose = torch.randn(bsz, 2, 16, 3) * 0.2
    offsets = torch.tensor([[0.0, 0.03, 0.0], [0.0, 0.2, 0.0],
                            [0.01, 0.035, 0.01], [0.0, 0.045, 0.0],
                            [0.3, 0.0, 0.0], [0.0, 0.025, -0.01]])
    verts = _stacked_hands(mano, offsets, pose).requires_grad_(True)
    for cls in ('HybridCollisionLoss', 'InsideCollisionLoss'):
        loss = MODELS.build(dict(type=cls, reduction='none'))
        batched = loss.per_sample(verts, mano.faces)
        grad_b, = torch.autograd.grad(batched.loss.sum(), verts)
        assert (batched.loss > 0).sum() >= 3  # the test exercises pairs
        assert not batched.active[[1, 4]].any()  # far apart: pre-filtered
        for i in range(bsz):
            single = loss.per_sample(verts[i:i + 1], mano.faces)
            grad_s, = torch.autograd.grad(single.loss.sum(), verts)
            torch.testing.assert_close(
                single.loss[0], batched.loss[i], rtol=1e-6, atol=1e-12)
            assert single.num_pairs[0] == batched.num_pairs[i]
            torch.testing.assert_close(
                grad_s[i], grad_b[i], rtol=1e-6, atol=1e-9)


def test_degenerate_meshes_are_nan_free(cube):
    """Coincident vertices and zero-area faces in the penetration region:
    finite loss and gradients, also with gradients through the normals."""
    v, f = cube
    vb = v.clone()
    vb[:, 0] += 0.009
    # collapse a patch of A's +x face onto one point and a whole face of B
    # onto a line
    patch = (v[:, 0] == 0.01) & (v[:, 1] >= 0.004) & (v[:, 1] <= 0.006)
    va = v.clone()
    va[patch] = va[patch][0]
    vb[vb[:, 2] == 0.0, 1] = 0.005
    for detach in (True, False):
        for fn in (hybrid_collision, inside_collision):
            a = va.clone().requires_grad_(True)
            b = vb.clone().requires_grad_(True)
            res = fn(a[None], b[None], f, f, detach_normals=detach)
            res.loss.sum().backward()
            assert torch.isfinite(res.loss).all() and res.loss.item() > 0
            assert torch.isfinite(a.grad).all() and torch.isfinite(
                b.grad).all()
    n = vertex_normals(va, f)
    assert torch.isfinite(n).all()


def test_all_coincident_vertices_give_zero(cube):
    v, f = cube
    point = torch.zeros_like(v) + 0.005
    a = point.clone().requires_grad_(True)
    res = hybrid_collision(a[None], v[None], f, f)
    res.loss.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert (vertex_normals(point, f) == 0).all()


def test_prefilter_skips_separated_hands(mano, monkeypatch):
    """Separated pairs never reach the nearest-neighbour search: the batch
    costs two min/max reductions."""
    calls = []
    real = col._nearest_pairs_both

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(col, '_nearest_pairs_both', counting)
    faces = mano.faces
    far = _stacked_hands(mano, torch.tensor([[0.0, 0.3, 0.0]] * 4))
    for cls in ('HybridCollisionLoss', 'InsideCollisionLoss'):
        res = MODELS.build(dict(type=cls)).per_sample(far, faces)
        assert res.loss.abs().sum() == 0 and not res.active.any()
    assert calls == []
    mixed = torch.cat(
        [far[:2],
         _stacked_hands(mano, torch.tensor([[0.0, 0.03, 0.0]]))])
    res = MODELS.build(dict(
        type='HybridCollisionLoss')).per_sample(mixed, faces)
    assert calls == [1]  # only the penetrating sample is searched
    assert res.active.tolist() == [False, False, True]


@pytest.mark.parametrize('budget', [col._GRID_BUDGET, 0])
def test_grid_prefilter_is_exact(budget, monkeypatch):
    """Dense grid, and (budget 0) the hashed fallback: every vertex with a
    vertex of the other set within the radius is kept, and some are not."""
    monkeypatch.setattr(col, '_GRID_BUDGET', budget)
    torch.manual_seed(0)
    a = torch.rand(3, 200, 3) * 0.1
    b = torch.rand(3, 150, 3) * 0.1 + 0.05
    mask_a = torch.rand(3, 200) > 0.2
    mask_b = torch.ones(3, 150, dtype=torch.bool)
    mask_b[2] = False  # a sample without candidates
    radius = 0.01
    near_a, near_b = col.grid_prefilter(a, b, radius, mask_a, mask_b)
    close = (torch.cdist(a, b) < radius) & mask_a[:, :, None] & mask_b[:, None]
    assert (near_a | ~close.any(2)).all() and (near_b | ~close.any(1)).all()
    assert not (near_a & ~mask_a).any() and not near_b[2].any()
    assert near_a.sum() < mask_a.sum()  # it does prune


def test_loss_module_reduction_and_errors(mano, cube):
    v = _stacked_hands(mano, torch.tensor([[0.0, 0.03, 0.0]] * 2))
    per = MODELS.build(dict(type='HybridCollisionLoss',
                            reduction='none'))(v, mano.faces)
    total = MODELS.build(dict(type='HybridCollisionLoss',
                              loss_weight=2.0))(v, mano.faces)
    mean = MODELS.build(dict(type='HybridCollisionLoss',
                             reduction='mean'))(v, mano.faces)
    assert per.shape == (2, )
    torch.testing.assert_close(total, 2 * per.sum())
    torch.testing.assert_close(mean, per.mean())
    with pytest.raises(ValueError, match='reduction'):
        MODELS.build(dict(type='HybridCollisionLoss', reduction='max'))
    with pytest.raises(ValueError, match=r'\(B, 2, V, 3\)'):
        MODELS.build(dict(type='HybridCollisionLoss'))(v[:, 0], mano.faces)
    with pytest.raises(ValueError, match='angle_threshold'):
        hybrid_collision(
            cube[0][None], cube[0][None], cube[1], cube[1], angle_threshold=0)
    assert math.isclose(
        MODELS.build(dict(type='InsideCollisionLoss', max_dist=0.01)).max_dist,
        0.01)
