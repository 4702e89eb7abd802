# Copyright (c) mmhand2p contributors. All rights reserved.
"""PenVol (manifold3d) and PenDist (torch) on boxes and bundled hands."""
import math

import numpy as np
import pytest
import torch

from mmhand2p.evaluation.functional import (MeshTopology, VolumeWorkerPool,
                                            check_closed_mesh,
                                            closed_hand_faces,
                                            closest_points_on_mesh,
                                            intersection_volume,
                                            penetration_depth,
                                            penetration_volume,
                                            point_mesh_signed_distance,
                                            winding_numbers)
from mmhand2p.evaluation.functional.penetration import _PairVolumes
from mmhand2p.utils.geometry import mirror_axis_angle


def box(lo, hi):
    """Closed, outward box: 8 corners (index 4 ix + 2 iy + iz), 12
    triangles."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                  for z in (lo[2], hi[2])])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6),
             (0, 2, 6, 4), (1, 5, 7, 3)]
    f = []
    for a, b, c, d in quads:
        f += [(a, b, c), (a, c, d)]
    return v, np.array(f)


CUBE_V, CUBE_F = box([0, 0, 0], [0.1, 0.1, 0.1])


@pytest.mark.parametrize(
    'offset, expected',
    [
        ((0.03, 0.02, 0.01), 0.07 * 0.08 * 0.09),
        ((-0.05, 0.0, 0.0), 0.05 * 0.1 * 0.1),
        ((0.0, 0.0, 0.0), 1e-3),
        ((0.099, 0.099, 0.099), 0.001**3),
        ((0.15, 0.0, 0.0), 0.0),  # apart
    ])
def test_box_intersection_volume(offset, expected):
    vb = CUBE_V + np.asarray(offset)
    vol, bbox = intersection_volume(CUBE_V, CUBE_F, vb, CUBE_F)
    assert vol == pytest.approx(expected, rel=1e-6, abs=1e-15)
    if expected > 0:
        lo = np.maximum(0, offset)
        assert bbox[0] == pytest.approx(lo)
        assert bbox[1] == pytest.approx(
            np.minimum(0.1, 0.1 + np.asarray(offset)))
    else:
        assert np.isnan(bbox).all()


def test_box_volumes_through_worker_processes():
    offsets = np.array(
        [[0.03, 0.02, 0.01], [0.01, 0.0, 0.0], [0.2, 0.0, 0.0]] * 4)
    vb = CUBE_V[None] + offsets[:, None]
    va = np.repeat(CUBE_V[None], len(offsets), 0)
    expected = np.prod(np.clip(0.1 - np.abs(offsets), 0, None), axis=1)
    with VolumeWorkerPool(CUBE_F, CUBE_F, num_workers=2, min_pairs=1) as p:
        vols, boxes = p(va, vb)
        vols2, _, ins_a, ins_b = p(va, vb, return_inside=True)
    assert vols == pytest.approx(expected, rel=1e-6)
    assert vols2 == pytest.approx(expected, rel=1e-6)
    serial, _ = penetration_volume(va, CUBE_F, vb, CUBE_F)
    assert serial == pytest.approx(expected, rel=1e-6)
    # offset (0.03, 0.02, 0.01): corner 7 of A is inside B, corner 0 of B
    # inside A
    assert np.nonzero(ins_a[0])[0].tolist() == [7]
    assert np.nonzero(ins_b[0])[0].tolist() == [0]


def test_signed_distance_to_a_cube_by_hand():
    v, f = box([0, 0, 0], [1, 1, 1])
    pts = torch.tensor([[[0.5, 0.5, 0.5], [1.1, 1.1, 0.5], [1.1, 1.1, 1.1],
                         [0.9, 0.9, 0.9], [0.5, 0.5, 1.2], [0.95, 0.5, 0.5]]],
                       dtype=torch.float64)
    sd = point_mesh_signed_distance(pts,
                                    torch.tensor(v)[None], MeshTopology(f))
    # centre, near an edge, near a corner, inside near a corner, above a
    # face, inside near a face
    assert sd[0].tolist() == pytest.approx(
        [-0.5, math.sqrt(0.02),
         math.sqrt(0.03), -0.1, 0.2, -0.05])
    _, q = closest_points_on_mesh(pts, torch.tensor(v)[None], MeshTopology(f))
    assert q[0, 2].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert q[0, 1].tolist() == pytest.approx([1.0, 1.0, 0.5])


def test_winding_number_counts_overlaps():
    # two overlapping cubes in ONE mesh (a self-intersecting surface)
    v1, f1 = box([0, 0, 0], [1, 1, 1])
    v2, f2 = box([0.5, 0, 0], [1.5, 1, 1])
    v = torch.tensor(np.concatenate([v1, v2]))[None]
    topo = MeshTopology(np.concatenate([f1, f2 + 8]))
    pts = torch.tensor([[[0.25, 0.5, 0.5], [0.75, 0.5, 0.5], [2.0, 0.5, 0.5]]],
                       dtype=torch.float64)
    assert winding_numbers(pts, v,
                           topo)[0].tolist() == pytest.approx([1.0, 2.0, 0.0],
                                                              abs=1e-9)


@pytest.mark.parametrize('inside_test', ['boolean', 'winding'])
def test_box_penetration_depth_by_hand(inside_test):
    vb = CUBE_V + np.array([0.03, 0.02, 0.01])
    topo = MeshTopology(CUBE_F)
    kwargs = {}
    if inside_test == 'boolean':
        _, _, ia, ib = intersection_volume(
            CUBE_V, CUBE_F, vb, CUBE_F, return_inside=True)
        kwargs = dict(
            inside_a=torch.as_tensor(ia)[None],
            inside_b=torch.as_tensor(ib)[None])
    da, db = penetration_depth(CUBE_V[None], vb[None], topo, topo, **kwargs)
    # corner (0.1, 0.1, 0.1) of A is inside B; its distances to B's faces
    # are 0.07, 0.08, 0.09, 0.03, 0.02, 0.01; B's corner (0.03, 0.02, 0.01)
    # is 0.01 from A's face z = 0
    expected_a = np.zeros(8)
    expected_a[7] = 0.01
    expected_b = np.zeros(8)
    expected_b[0] = 0.01
    assert da[0].tolist() == pytest.approx(expected_a.tolist(), abs=1e-8)
    assert db[0].tolist() == pytest.approx(expected_b.tolist(), abs=1e-8)


def test_open_mesh_fails_loudly_naming_the_sample():
    open_faces = CUBE_F[:-1]
    with pytest.raises(ValueError, match=r"img_007\.jpg.*not closed"):
        check_closed_mesh(open_faces, 'img_007.jpg')
    with pytest.raises(ValueError, match=r"img_007\.jpg"):
        penetration_volume(
            CUBE_V[None],
            open_faces,
            CUBE_V[None],
            CUBE_F,
            names=['img_007.jpg'])
    flipped = CUBE_F.copy()
    flipped[0] = flipped[0, [0, 2, 1]]
    with pytest.raises(ValueError, match='consistently oriented'):
        check_closed_mesh(flipped, 'img_008.jpg')
    # non-finite vertices are not a volume of 0 either
    bad = CUBE_V.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"img_009\.jpg.*non-finite"):
        intersection_volume(CUBE_V, CUBE_F, bad, CUBE_F, 'img_009.jpg')


# ---------------------------------------------------------------------------
# bundled hand model
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def hands():
    """Right hand, and the left hand of the bundled model placed palm to
    palm so that the two meshes touch at one point: the left model is the
    exact mirror of the right one (x -> -x), and turning the mirrored hand
    by pi about z makes it the reflection of the right hand through a plane
    y = const, chosen through the right hand's lowest vertex."""
    from mmhand2p.models.body_models import MANOLayer
    layer = MANOLayer()
    g = torch.Generator().manual_seed(3)
    pose = torch.zeros(1, 16, 3)
    pose[:, 1:] = 0.2 * torch.randn(1, 15, 3, generator=g)
    with torch.no_grad():
        out = layer(pose=torch.stack([pose, mirror_axis_angle(pose)], 1))
    v = out.vertices[0].double().numpy()
    right = v[0]
    left = v[1] * np.array([-1.0, -1.0, 1.0])  # turn by pi about z
    y_min = right[:, 1].min()
    left[:, 1] += 2 * y_min
    faces = layer.faces.numpy()
    fr, loops_r = closed_hand_faces(faces[0])
    fl, loops_l = closed_hand_faces(faces[1])

    def close(x, loops):
        return np.concatenate([x, [x[loop].mean(0) for loop in loops]])

    return dict(
        right=close(right, loops_r),
        left=close(left, loops_l),
        faces=(fr, fl),
        raw_faces=faces,
        topo=(MeshTopology(fr), MeshTopology(fl)),
        query=torch.arange(779) < 778)


def _pushed(hands, deltas):
    left = np.stack([hands['left'] + [0.0, d, 0.0] for d in deltas])
    right = np.repeat(hands['right'][None], len(deltas), 0)
    return right, left


def test_touching_hands_have_no_penetration(hands):
    right, left = _pushed(hands, [0.0])
    vols, boxes, ia, ib = penetration_volume(
        right, hands['faces'][0], left, hands['faces'][1], return_inside=True)
    assert vols[0] * 1e6 < 1e-3  # cm^3
    da, db = penetration_depth(right, left, *hands['topo'], hands['query'],
                               hands['query'], torch.as_tensor(ia),
                               torch.as_tensor(ib))
    assert max(da.max().item(), db.max().item()) * 1e3 < 1e-3  # mm


def test_pushed_hands_penetrate_monotonically(hands):
    deltas = [0.0005, 0.001, 0.002, 0.004, 0.008]
    right, left = _pushed(hands, deltas)
    vols, boxes, ia, ib = penetration_volume(
        right, hands['faces'][0], left, hands['faces'][1], return_inside=True)
    assert (vols > 0).all() and (np.diff(vols) > 0).all()
    da, db = penetration_depth(right, left, *hands['topo'], hands['query'],
                               hands['query'], torch.as_tensor(ia),
                               torch.as_tensor(ib))
    depth = torch.maximum(da.amax(1), db.amax(1)).numpy()
    # the meshes were interior-disjoint before the push, so no vertex can
    # be deeper than the push: a path of length delta leaves the other hand
    assert (depth > 0).all()
    assert (depth <= np.array(deltas) * (1 + 1e-5)).all()
    assert (np.diff(depth) > 0).all()
    # the winding-number inside test (torch) finds the same vertices
    da2, db2 = penetration_depth(
        right,
        left,
        *hands['topo'],
        hands['query'],
        hands['query'],
        boxes=torch.as_tensor(boxes))
    assert torch.equal(da2 > 0, da > 0) and torch.equal(db2 > 0, db > 0)
    assert torch.allclose(da2, da) and torch.allclose(db2, db)
    # worker processes give the same volumes
    with VolumeWorkerPool(*hands['faces'], num_workers=2, min_pairs=1) as p:
        vols_pool, _ = p(right, left)
    assert vols_pool == pytest.approx(vols, rel=1e-12)


def test_moved_solids_match_rebuilt_solids(hands):
    """Warping the first solid (the fast path) gives the volumes of
    building every solid from its mesh."""
    g = np.random.default_rng(0)
    deltas = g.uniform(0.0, 0.01, size=6)
    right, left = _pushed(hands, deltas)
    right = right + g.normal(scale=1e-3, size=right.shape)  # other shapes
    fast = _PairVolumes(*hands['faces'])
    vols, _ = fast(right, left, list(range(len(deltas))))
    assert fast.solid_a.template is not None  # the warp path was taken
    ref = [
        intersection_volume(right[i], hands['faces'][0], left[i],
                            hands['faces'][1])[0] for i in range(len(deltas))
    ]
    assert vols == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_uncapped_hand_fails_loudly(hands):
    right, left = _pushed(hands, [0.002])
    with pytest.raises(ValueError, match=r"capture0/img_42\.jpg.*16"):
        penetration_volume(
            right[:, :778],
            hands['raw_faces'][0],
            left[:, :778],
            hands['raw_faces'][1],
            names=['capture0/img_42.jpg'])


def test_penetration_depth_bad_shapes(hands):
    with pytest.raises(ValueError, match=r'\(B, Va, 3\)'):
        penetration_depth(
            np.zeros((2, 779, 3)), np.zeros((3, 779, 3)), *hands['topo'])
