# Copyright (c) mmhand2p contributors. All rights reserved.
"""The shared mesh geometry of :mod:`mmhand2p.geometry` (values by hand).

The metric-side tests (worker pool, PenDist) stay in
``tests/test_evaluation/test_functional/test_penetration.py``.
"""
import numpy as np
import pytest
import torch

from mmhand2p.evaluation.functional import penetration_volume
from mmhand2p.geometry import (MeshTopology, cap_holes, closed_hand_faces,
                               closest_points_on_triangles,
                               intersection_volumes, winding_numbers)

# a unit cube, outward winding
CUBE_V = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)],
                  dtype=np.float64)
CUBE_F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5],
                   [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4],
                   [1, 5, 7], [1, 7, 3]])


def test_closest_points_on_triangles_by_region():
    a, b, c = (torch.tensor(v, dtype=torch.float64)
               for v in ([0., 0, 0], [1., 0, 0], [0., 1, 0]))
    p = torch.tensor([
        [0.2, 0.2, 5.0],  # above the interior -> its foot
        [-1.0, -1.0, 0.0],  # beyond vertex a -> a
        [3.0, -0.5, 0.0],  # beyond vertex b -> b
        [0.5, -2.0, 1.0],  # below edge ab -> (0.5, 0, 0)
        [1.0, 1.0, 0.0],  # beyond edge bc -> its midpoint
    ], dtype=torch.float64)
    q = closest_points_on_triangles(p, a, b, c)
    expected = torch.tensor([[0.2, 0.2, 0.0], [0, 0, 0], [1, 0, 0],
                             [0.5, 0, 0], [0.5, 0.5, 0]],
                            dtype=torch.float64)
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-12)


def test_winding_numbers_of_a_cube():
    topo = MeshTopology(CUBE_F)
    pts = torch.tensor([[[0.5, 0.5, 0.5], [2.0, 0.5, 0.5], [0.1, 0.9, 0.2]]],
                       dtype=torch.float64)
    w = winding_numbers(pts, torch.from_numpy(CUBE_V)[None], topo)
    torch.testing.assert_close(
        w, torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64), rtol=0,
        atol=1e-9)


def test_cap_holes_closes_an_open_cube():
    open_f = CUBE_F[2:]  # remove the x = 0 square: one loop of 4 vertices
    v, f = cap_holes(CUBE_V, open_f)
    assert v.shape == (9, 3) and f.shape == (14, 3)
    np.testing.assert_allclose(v[8], [0, 0.5, 0.5])
    MeshTopology(f)  # closed and consistently oriented, else ValueError
    capped, loops = closed_hand_faces(open_f)
    np.testing.assert_array_equal(capped, f)
    assert [sorted(loop.tolist()) for loop in loops] == [[0, 1, 2, 3]]


@pytest.mark.parametrize('shift,expected', [(0.5, 0.5), (0.25, 0.75),
                                            (1.5, 0.0)])
def test_intersection_volumes_by_hand_and_as_the_metric(shift, expected):
    a = np.stack([CUBE_V, CUBE_V])
    b = a + np.array([shift, 0, 0])
    vol, boxes = intersection_volumes(a, CUBE_F, b, CUBE_F, names=['x', 'y'])
    np.testing.assert_allclose(vol, [expected] * 2, rtol=0, atol=1e-12)
    # the metric's serial path computes the same numbers bit for bit
    ref = penetration_volume(a, CUBE_F, b, CUBE_F, num_workers=0)
    np.testing.assert_array_equal(vol, ref[0])
    np.testing.assert_array_equal(boxes, ref[1])


def test_intersection_volumes_names_an_open_mesh():
    with pytest.raises(ValueError, match="sample 'left-7'"):
        intersection_volumes(CUBE_V[None], CUBE_F[2:], CUBE_V[None], CUBE_F,
                             names=['left-7'])


def test_vertex_normals_numpy_and_torch_agree_on_a_cube():
    from mmhand2p.geometry import vertex_normals
    n_np = vertex_normals(CUBE_V, CUBE_F)
    n_t = vertex_normals(torch.from_numpy(CUBE_V), torch.from_numpy(CUBE_F))
    assert isinstance(n_np, np.ndarray) and torch.is_tensor(n_t)
    # each corner's normal points away from the centre, along the diagonal
    # weighted by the faces' areas (two triangles per face share a corner
    # unevenly), so check direction and unit length only
    np.testing.assert_allclose(np.linalg.norm(n_np, axis=1), 1.0, atol=1e-12)
    assert ((n_np * (CUBE_V - 0.5)).sum(1) > 0).all()
    np.testing.assert_allclose(n_t.numpy(), n_np, rtol=0, atol=1e-12)
    # an unused vertex gets a zero normal, never NaN, in both backends
    v = np.concatenate([CUBE_V, [[5.0, 5.0, 5.0]]])
    assert (vertex_normals(v, CUBE_F)[8] == 0).all()
    assert (vertex_normals(torch.from_numpy(v), torch.from_numpy(CUBE_F))[8]
            == 0).all()
