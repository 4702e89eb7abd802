# Copyright (c) mmhand2p contributors. All rights reserved.
import os.path as osp
import time

import numpy as np
import pytest

from mmhand2p.visualization import render_meshes, vertex_normals

K = (100.0, 100.0, 32.0, 32.0)  # fx, fy, cx, cy
SIZE = (64, 64)


def _square(z, half=1.0, x0=0.0, y0=0.0):
    """Two triangles of a square facing the camera at depth z."""
    v = np.array([[x0 - half, y0 - half, z], [x0 + half, y0 - half, z],
                  [x0 + half, y0 + half, z], [x0 - half, y0 + half, z]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    return v, f


def _cube(centre, side):
    c = np.asarray(centre, float)
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1)
                        for z in (-1, 1)], float) * side / 2 + c
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6),
             (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([[a, b, c_]
                  for a, b, c_, d in quads] + [[a, c_, d]
                                               for a, b, c_, d in quads])
    return corners, f


def test_single_triangle_depth_and_ids():
    v = np.array([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    f = np.array([[0, 1, 2]])
    out = render_meshes([v], f, K, SIZE)
    assert out.image.shape == (64, 64, 3) and out.image.dtype == np.uint8
    assert out.depth.dtype == np.float32
    assert out.depth[32, 32] == pytest.approx(2.0, abs=1e-6)
    assert out.mesh_id[32, 32] == 0 and out.face_id[32, 32] == 0
    # projected footprint: u = 100 * x / 2 + 32 in [7, 57], rows 7..57
    assert out.mesh_id[5, 32] == -1 and out.mesh_id[32, 2] == -1
    assert out.depth[5, 32] == 0.0
    covered = out.mesh_id >= 0
    # area of the projected triangle: 0.5 * 50 * 50 pixels
    assert covered.sum() == pytest.approx(1250, rel=0.05)
    assert np.all(out.image[~covered] == 0)


def test_projection_convention():
    # a tiny triangle around the point projecting to (u, v) = (10, 20)
    z = 1.0
    x, y = (10 - K[2]) / K[0] * z, (20 - K[3]) / K[1] * z
    e = 0.004
    v = np.array([[x - e, y - e, z], [x + e, y - e, z], [x, y + e, z]])
    out = render_meshes([v], np.array([[0, 1, 2]]), K, SIZE)
    assert out.mesh_id[20, 10] == 0
    assert (out.mesh_id >= 0).sum() == 1


def test_perspective_correct_depth_of_a_tilted_plane():
    # plane z = 2 + 0.5 x, big enough to cover the image centre region
    xs = np.array([-1.0, 1.0, 1.0, -1.0])
    ys = np.array([-1.0, -1.0, 1.0, 1.0])
    v = np.stack([xs, ys, 2 + 0.5 * xs], 1)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    out = render_meshes([v], f, K, SIZE)
    for col in (20, 32, 45):
        # ray through pixel centre: x = (col - cx) / fx * z
        a = (col - K[2]) / K[0]
        z = 2.0 / (1.0 - 0.5 * a)
        assert out.depth[32, col] == pytest.approx(z, rel=1e-5)


def test_cube_depth_and_shading():
    v, f = _cube((0.0, 0.0, 3.0), 1.0)
    out = render_meshes(
        v[None],
        f,
        K,
        SIZE,
        colors=(1.0, 0.5, 0.25),
        light_dir=(0, 0, -1),
        ambient=0.2,
        diffuse=0.8,
        smooth=False)
    assert out.depth[32, 32] == pytest.approx(2.5, abs=1e-6)
    assert out.mesh_id[32, 32] == 0
    # the front face faces the light: full intensity = the mesh colour
    np.testing.assert_array_equal(out.image[32, 32], [255, 128, 64])
    # cube front face spans x in [-0.5, 0.5] at z = 2.5: u in [12, 52]
    assert out.mesh_id[32, 13] == 0 and out.mesh_id[32, 10] == -1


def test_lambert_cosine():
    v, f = _square(2.0)
    light = (0.0, np.sin(np.pi / 3), -np.cos(np.pi / 3))  # 60 deg off
    out = render_meshes([v],
                        f,
                        K,
                        SIZE,
                        colors=(1.0, 1.0, 1.0),
                        light_dir=light,
                        ambient=0.0,
                        diffuse=1.0,
                        smooth=False)
    assert out.image[32, 32, 0] == round(0.5 * 255)
    # a light behind the surface gives the ambient term only
    out = render_meshes([v],
                        f,
                        K,
                        SIZE,
                        colors=(1.0, 1.0, 1.0),
                        light_dir=(0, 0, 1),
                        ambient=0.3,
                        diffuse=0.7)
    assert out.image[32, 32, 0] == round(0.3 * 255)


@pytest.mark.parametrize('near_first', [True, False])
def test_occlusion_nearest_mesh_wins(near_first):
    far = _square(3.0, half=1.0)
    near = _square(1.5, half=0.2, x0=0.1)
    meshes = [near[0], far[0]] if near_first else [far[0], near[0]]
    near_id = 0 if near_first else 1
    out = render_meshes(meshes, near[1], K, SIZE)
    u = int(round(K[0] * 0.1 / 1.5 + K[2]))
    assert out.mesh_id[32, u] == near_id
    assert out.depth[32, u] == pytest.approx(1.5, abs=1e-6)
    # outside the small square the far one is visible
    assert out.mesh_id[32, 60] == 1 - near_id
    assert out.depth[32, 60] == pytest.approx(3.0, abs=1e-6)


def test_background_image_and_colour():
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    v, f = _square(2.0, half=0.2)
    out = render_meshes([v], f, K, background=bg)
    hit = out.mesh_id >= 0
    assert hit.sum() > 0 and (~hit).sum() > 0
    np.testing.assert_array_equal(out.image[~hit], bg[~hit])
    assert np.any(out.image[hit] != bg[hit])
    assert np.all(out.mesh_id[~hit] == -1) and np.all(out.depth[~hit] == 0)
    out = render_meshes([v], f, K, SIZE, background=(10, 20, 30))
    np.testing.assert_array_equal(out.image[0, 0], [10, 20, 30])


def test_behind_camera_and_empty():
    v, f = _square(-2.0)
    out = render_meshes([v], f, K, SIZE)
    assert np.all(out.mesh_id == -1)
    out = render_meshes([np.zeros((0, 3))], np.zeros((0, 3), int), K, SIZE)
    assert np.all(out.mesh_id == -1)


def test_intrinsics_matrix_batch_and_supersampling():
    v, f = _cube((0.1, -0.05, 3.0), 1.0)
    kmat = np.array([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1]])
    a = render_meshes([v, v + [0, 0, 5]], f, K, SIZE)
    b = render_meshes(np.stack([v, v + [0, 0, 5]]), [f, f], kmat, SIZE)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    s = render_meshes([v], f, K, SIZE, supersample=3)
    assert s.image.shape == (64, 64, 3)
    # supersampling keeps the ids of the pixel centres
    np.testing.assert_array_equal(s.mesh_id, a.mesh_id)
    # and produces intermediate colours along the silhouette
    edge = (a.mesh_id >= 0) != np.roll(a.mesh_id >= 0, 1, axis=1)
    assert len(np.unique(s.image[edge][:, 0])) > 2


def test_vertex_normals_of_cube_point_outwards():
    v, f = _cube((0.0, 0.0, 0.0), 2.0)
    n = vertex_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    assert np.all((n * v).sum(1) > 0)


def test_two_hands_fast():
    assets = osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'mmhand2p', 'assets')
    r = np.load(osp.join(assets, 'MANO_RIGHT.npz'))
    lft = np.load(osp.join(assets, 'MANO_LEFT.npz'))
    # hands 0.5 m in front of the camera, palms towards it
    rot = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)
    vr = r['v_template'] @ rot.T + [0.05, 0.0, 0.5]
    vl = lft['v_template'] @ rot.T + [-0.05, 0.0, 0.5]
    faces = [r['f'].astype(np.int64), lft['f'].astype(np.int64)]
    render_meshes([vr, vl], faces, (300, 300, 128, 128), (256, 256))
    t = time.perf_counter()
    out = render_meshes([vr, vl], faces, (300, 300, 128, 128), (256, 256))
    elapsed = time.perf_counter() - t
    assert elapsed < 1.0
    ids = set(np.unique(out.mesh_id).tolist())
    assert ids == {-1, 0, 1}
    d = out.depth[out.mesh_id >= 0]
    assert 0.43 < d.min() and d.max() < 0.57
