# Copyright (c) mmhand2p contributors. All rights reserved.
"""The bundled, procedurally generated hand model (mmhand2p/assets).

It must have MANO's exact file format and topology, a sane closed-able
surface, working skinning, and be reproducible from the committed generator.
"""
import os.path as osp

import numpy as np
import pytest

from mmhand2p.synthetic import hand_model as ph

ASSETS = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
    'mmhand2p', 'assets')
KEYS = ('v_template', 'f', 'J_regressor', 'J', 'kintree_table', 'weights',
        'shapedirs', 'posedirs', 'hands_components', 'hands_mean',
        'hands_coeffs', 'bs_style', 'bs_type')
SIDES = ('RIGHT', 'LEFT')
MIRROR = np.array([-1.0, 1.0, 1.0])


def _load(side):
    with np.load(osp.join(ASSETS, f'MANO_{side}.npz')) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope='module')
def models():
    return {side: _load(side) for side in SIDES}


@pytest.fixture(scope='module')
def regenerated():
    right = ph.build_hand_model(seed=0, is_rhand=True)
    return {'RIGHT': right, 'LEFT': ph.mirror_hand_model(right)}


def _faces(m):
    return m['f'].astype(np.int64)


# ----------------------------------------------------------------- format


@pytest.mark.parametrize('side', SIDES)
def test_keys_shapes_and_dtypes(models, side):
    m = models[side]
    assert set(KEYS) <= set(m)
    assert m['v_template'].shape == (778, 3)
    assert m['f'].shape == (1538, 3)
    assert m['f'].dtype in (np.uint32, np.int64)
    assert m['J_regressor'].shape == (16, 778)
    assert m['J'].shape == (16, 3)
    assert m['kintree_table'].shape == (2, 16)
    assert m['kintree_table'].dtype == np.int64
    assert m['weights'].shape == (778, 16)
    assert m['shapedirs'].shape == (778, 3, 10)
    assert m['posedirs'].shape == (778, 3, 135)
    assert m['hands_components'].shape == (45, 45)
    assert m['hands_mean'].shape == (45, )
    assert m['hands_coeffs'].ndim == 2 and m['hands_coeffs'].shape[1] == 45
    assert str(m['bs_style']) == 'lbs'
    assert str(m['bs_type']) == 'lrotmin'
    for k in KEYS:
        if m[k].dtype.kind == 'f':
            assert np.all(np.isfinite(m[k])), k


@pytest.mark.parametrize('side', SIDES)
def test_files_are_small_and_load_without_pickle(side):
    path = osp.join(ASSETS, f'MANO_{side}.npz')
    assert osp.getsize(path) < 1.5e6
    with np.load(path, allow_pickle=False) as z:
        assert len(z.files) >= len(KEYS)


@pytest.mark.parametrize('side', SIDES)
def test_kintree(models, side):
    kt = models[side]['kintree_table']
    np.testing.assert_array_equal(
        kt[0], [4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
    np.testing.assert_array_equal(kt[1], np.arange(16))


# --------------------------------------------------------------- topology


@pytest.mark.parametrize('side', SIDES)
def test_one_wrist_loop_of_16_vertices(models, side):
    m = models[side]
    loops = ph.boundary_loops(_faces(m))
    assert len(loops) == 1
    loop = loops[0]
    assert len(loop) == 16
    # the wrist opening: the 16 vertices lie in one plane at the wrist end
    v = m['v_template']
    x = v[loop, 0]
    assert np.ptp(x) < 1e-9
    assert abs(x[0]) == pytest.approx(np.abs(v[:, 0]).max())
    assert np.sign(x[0]) == (1 if side == 'RIGHT' else -1)


@pytest.mark.parametrize('side', SIDES)
def test_manifold_oriented_euler(models, side):
    m = models[side]
    f = _faces(m)
    v = m['v_template']
    edges, counts = ph.edge_face_counts(f)
    assert counts.max() == 2
    assert (counts == 1).sum() == 16
    assert len(v) - len(edges) + len(f) == 1
    # consistent orientation: every directed half-edge occurs once
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(half, axis=0)) == len(half)
    # every vertex is used, no face repeats a vertex
    assert len(np.unique(f)) == 778
    assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2])
                  & (f[:, 2] != f[:, 0]))
    cv, cf = ph.cap_boundary_loops(v, f)
    ce, cc = ph.edge_face_counts(cf)
    assert np.all(cc == 2)
    assert len(cv) - len(ce) + len(cf) == 2


def test_capped_volume_positive_and_equal(models):
    vols = {}
    for side in SIDES:
        m = models[side]
        vols[side] = ph.signed_volume(
            *ph.cap_boundary_loops(m['v_template'], _faces(m)))
    # an adult hand cut at the wrist: roughly 250-500 cm^3, outward normals
    assert 250e-6 < vols['RIGHT'] < 500e-6
    assert vols['LEFT'] == pytest.approx(vols['RIGHT'], rel=1e-9)


def test_capped_mesh_is_a_valid_manifold3d_solid(models):
    import manifold3d
    m = models['RIGHT']
    cv, cf = ph.cap_boundary_loops(m['v_template'], _faces(m))
    mesh = manifold3d.Mesh(
        vert_properties=cv.astype(np.float32), tri_verts=cf.astype(np.uint32))
    solid = manifold3d.Manifold(mesh)
    assert solid.status() == manifold3d.Error.NoError
    assert solid.volume() == pytest.approx(ph.signed_volume(cv, cf), rel=1e-3)
    assert solid.genus() == 0


@pytest.mark.parametrize('side', SIDES)
def test_no_degenerate_faces_and_no_self_intersection(models, side):
    m = models[side]
    v, f = m['v_template'], _faces(m)
    t = v[f]
    area = 0.5 * np.linalg.norm(
        np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    assert area.min() > 1e-7  # 0.1 mm^2
    edges, _ = ph.edge_face_counts(f)
    length = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    assert length.min() > 5e-4
    assert len(ph.self_intersections(v, f)) == 0


def test_self_intersection_check_detects_a_crossing():
    # two triangles piercing each other
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, -1],
                  [0.2, 0.2, 1], [1.2, 0.2, 0.0]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    assert len(ph.self_intersections(v, f)) > 0
    moved = v + np.array([[0, 0, 0]] * 3 + [[5, 0, 0]] * 3)
    assert len(ph.self_intersections(moved, f)) == 0


# --------------------------------------------------------------- geometry


def test_canonical_frame_and_size(models):
    m = models['RIGHT']
    v, j = m['v_template'], m['J']
    tips = {k: v[i] for k, i in ph.FINGERTIP_VERTEX_IDS.items()}
    # fingers along -x from the wrist
    for name, tip in tips.items():
        assert tip[0] < j[0, 0] - 0.08, name
    # thumb on the +z side, little finger on the -z side
    assert tips['thumb'][2] > tips['index'][2] > tips['middle'][2] > \
        tips['ring'][2] > tips['little'][2]
    # palm faces -y: the thenar pad and the thumb hang below the knuckles
    assert tips['thumb'][1] < -0.01
    length = np.linalg.norm(tips['middle'] - j[0])
    assert 0.18 <= length <= 0.19
    thumb = m['weights'][:, 13:16].sum(1) >= 0.5
    band = (v[:, 0] > j[4, 0]) & (v[:, 0] < j[4, 0] + 0.02)
    assert 0.075 < np.ptp(v[band & ~thumb, 2]) < 0.09


def test_left_is_the_mirror_of_right(models):
    r, lft = models['RIGHT'], models['LEFT']
    np.testing.assert_allclose(lft['v_template'], r['v_template'] * MIRROR)
    np.testing.assert_allclose(lft['J'], r['J'] * MIRROR)
    np.testing.assert_allclose(lft['shapedirs'],
                               r['shapedirs'] * MIRROR[None, :, None])
    np.testing.assert_array_equal(lft['J_regressor'], r['J_regressor'])
    np.testing.assert_array_equal(lft['weights'], r['weights'])
    np.testing.assert_array_equal(lft['f'], r['f'][:, ::-1])


@pytest.mark.parametrize('side', SIDES)
def test_fingertip_vertices(models, side):
    m = models[side]
    v, j, w = m['v_template'], m['J'], m['weights']
    for name, tip in ph.FINGERTIP_VERTEX_IDS.items():
        ids = ph.FINGER_JOINTS[name]
        last, prev = j[ids[2]], j[ids[1]]
        direction = (last - prev) / np.linalg.norm(last - prev)
        # the vertices of the distal phalanx (mostly following the last joint)
        finger = np.nonzero(w[:, ids[2]] > 0.5)[0]
        assert tip in finger
        along = (v[finger] - last) @ direction
        dist = np.linalg.norm(v[finger] - last, axis=1)
        assert finger[np.argmax(along)] == tip, name
        assert finger[np.argmax(dist)] == tip, name
        # strictly farthest, and at the end of a 15-30 mm distal phalanx
        assert np.sort(along)[-2] < along.max() - 1e-4
        assert 0.015 < along.max() < 0.03


# ------------------------------------------------------ regressor, weights


@pytest.mark.parametrize('side', SIDES)
def test_joint_regressor(models, side):
    m = models[side]
    reg, v = m['J_regressor'], m['v_template']
    assert reg.min() >= 0
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(reg @ v, m['J'], atol=1e-12)
    # each joint averages a ring of vertices, not a single vertex
    assert (reg > 0).sum(1).min() >= 6
    # the joints lie inside the (capped) hand
    cv, cf = ph.cap_boundary_loops(v, _faces(m))
    wn = ph.winding_number(cv, cf, m['J'])
    np.testing.assert_allclose(wn, 1.0, atol=1e-6)
    outside = cv.max(0) + 0.05
    assert abs(ph.winding_number(cv, cf, outside[None])[0]) < 1e-6


def test_joints_inside_with_trimesh(models):
    import trimesh
    m = models['RIGHT']
    cv, cf = ph.cap_boundary_loops(m['v_template'], _faces(m))
    mesh = trimesh.Trimesh(cv, cf, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(ph.signed_volume(cv, cf))
    assert mesh.euler_number == 2
    try:  # trimesh's ray queries need rtree
        import rtree  # noqa: F401
    except ImportError:
        return
    assert mesh.contains(m['J']).all()


@pytest.mark.parametrize('side', SIDES)
def test_skinning_weights(models, side):
    m = models[side]
    w = m['weights']
    assert w.min() >= 0
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    # every joint drives some vertices
    assert np.all(w.max(0) > 0.85)
    # the wrist loop follows the root, fingertips their distal joint
    loop = ph.boundary_loops(_faces(m))[0]
    np.testing.assert_allclose(w[loop, 0], 1.0)
    for name, tip in ph.FINGERTIP_VERTEX_IDS.items():
        assert w[tip, ph.FINGER_JOINTS[name][2]] == pytest.approx(1.0)
    # a bone segment follows its PROXIMAL joint: the vertex ring at the
    # middle of the index's proximal phalanx follows joint 1 (index MCP)
    v, j = m['v_template'], m['J']
    mid = 0.5 * (j[1] + j[2])
    ring = np.linalg.norm(v - mid, axis=1) < 0.0125
    assert ring.sum() >= 8
    assert np.all(w[ring].argmax(1) == 1)


# ------------------------------------------------------------- shape, PCA


def test_shapedirs_are_meaningful(models):
    m = models['RIGHT']
    sd = m['shapedirs']
    disp = np.linalg.norm(sd, axis=1).max(0)  # max displacement per beta
    assert np.all(disp > 5e-4) and np.all(disp < 0.012)
    assert np.linalg.matrix_rank(sd.reshape(-1, 10), tol=1e-6) == 10
    # beta_0 scales the hand: +1 makes it about 4% longer
    v, j = m['v_template'], m['J']
    big = v + sd[..., 0]
    length0 = np.linalg.norm(v[444] - j[0])
    length1 = np.linalg.norm(big[444] - (m['J_regressor'] @ big)[0])
    assert 1.02 < length1 / length0 < 1.06


@pytest.mark.parametrize('side', SIDES)
def test_pose_pca(models, side):
    m = models[side]
    c = m['hands_components']
    np.testing.assert_allclose(c @ c.T, np.eye(45), atol=1e-10)
    coeffs = m['hands_coeffs']
    var = coeffs.var(0)
    assert np.all(np.diff(var) <= 1e-12)  # decreasing variance
    np.testing.assert_allclose(coeffs.mean(0), 0.0, atol=1e-10)
    # the mean pose is slightly curled: positive flexion about +z (right) /
    # -z (left) on every long-finger joint, below ~0.8 rad
    mean = m['hands_mean'].reshape(15, 3)
    sign = 1 if side == 'RIGHT' else -1
    long_fingers = [
        j - 1 for n, ids in ph.FINGER_JOINTS.items() if n != 'thumb'
        for j in ids
    ]
    flex = sign * mean[long_fingers, 2]
    assert np.all(flex > 0.1) and np.all(flex < 0.8)


def test_left_pca_is_mirrored_right_pca(models):
    r, lft = models['RIGHT'], models['LEFT']
    poses_r = r['hands_mean'] + r['hands_coeffs'][:50] @ r['hands_components']
    poses_l = lft['hands_mean'] + \
        lft['hands_coeffs'][:50] @ lft['hands_components']
    np.testing.assert_allclose(
        poses_l, ph.mirror_axis_angle_pose(poses_r), atol=1e-12)


def test_pose_prior():
    rng = np.random.default_rng(3)
    poses = ph.sample_finger_poses(2000, rng)
    assert poses.shape == (2000, 45)
    assert np.all(np.isfinite(poses))
    np.testing.assert_array_equal(
        poses, ph.sample_finger_poses(2000, np.random.default_rng(3)))
    axes = ph.finger_joint_axes()
    rv = poses.reshape(-1, 15, 3)
    flex = np.einsum('njc,jc->nj', rv, axes[:, 0])
    abd = np.einsum('njc,jc->nj', rv, axes[:, 1])
    # joint limits: flexion within [-0.4, 1.9], small abduction
    assert flex.min() >= -0.4 - 1e-9 and flex.max() <= 1.9 + 1e-9
    assert np.abs(abd).max() <= 0.7 + 1e-9
    # PIPs barely hyperextend, curls are correlated across fingers
    pip = flex[:, [1, 4, 10, 7]]  # index, middle, ring, little PIPs
    assert pip.min() >= -0.05 - 1e-9
    assert 0.3 < np.median(pip) < 1.0
    corr = np.corrcoef(pip.T)
    assert corr[1, 2] > 0.6  # middle-ring
    assert corr[2, 3] > 0.6  # ring-little
    assert corr[0, 3] > 0.2  # index-little
    # DIP follows PIP
    dip = flex[:, [2, 5, 11, 8]]
    assert np.corrcoef(pip[:, 1], dip[:, 1])[0, 1] > 0.8


def test_finger_pose_from_angles_flexion_axis():
    flex = np.zeros(15)
    flex[3] = 0.5  # middle MCP (joint 4)
    pose = ph.finger_pose_from_angles(flex, np.zeros(15), np.zeros(15))
    rv = pose.reshape(15, 3)[3]
    # right hand, fingers along -x, palm -y: flexion is about ~+z
    assert rv[2] == pytest.approx(0.5, abs=0.01)
    assert np.abs(rv[:2]).max() < 0.01


# ---------------------------------------------------------- smplx, posing


def _fist_pose():
    flex = np.zeros(15)
    for name, ids in ph.FINGER_JOINTS.items():
        vals = (0.5, 0.5, 0.7) if name == 'thumb' else (1.2, 1.4, 0.8)
        for k, j in enumerate(ids):
            flex[j - 1] = vals[k]
    return ph.finger_pose_from_angles(flex, np.zeros(15), np.zeros(15))


@pytest.mark.parametrize('use_dir', [True, False])
def test_smplx_loads_and_fist_closes_the_hand(models, use_dir):
    import smplx
    import torch
    path = ASSETS if use_dir else osp.join(ASSETS, 'MANO_RIGHT.npz')
    mano = smplx.MANO(
        model_path=path,
        is_rhand=True,
        ext='npz',
        use_pca=False,
        flat_hand_mean=True)
    m = models['RIGHT']
    with torch.no_grad():
        rest = mano(
            global_orient=torch.zeros(1, 3),
            hand_pose=torch.zeros(1, 45),
            betas=torch.zeros(1, 10))
        out = mano(
            global_orient=torch.zeros(1, 3),
            hand_pose=torch.tensor(_fist_pose()[None], dtype=torch.float32),
            betas=torch.zeros(1, 10))
    v0 = rest.vertices[0].double().numpy()
    np.testing.assert_allclose(v0, m['v_template'], atol=1e-6)
    np.testing.assert_allclose(
        rest.joints[0, :16].double().numpy(), m['J'], atol=1e-6)
    v1 = out.vertices[0].double().numpy()
    assert np.all(np.isfinite(v1))
    # a point in front of the palm at the wrist: every fingertip gets closer
    palm_side = m['J'][0] + np.array([-0.03, -0.03, 0.0])
    for name, tip in ph.FINGERTIP_VERTEX_IDS.items():
        d0 = np.linalg.norm(v0[tip] - palm_side)
        d1 = np.linalg.norm(v1[tip] - palm_side)
        assert d1 < d0 - 0.01, name
    # the long fingers curl towards the palm (-y)
    for name in ('index', 'middle', 'ring', 'little'):
        tip = ph.FINGERTIP_VERTEX_IDS[name]
        assert v1[tip, 1] < v0[tip, 1] - 0.03
    # numpy forward pass agrees with smplx
    vn, _ = ph.lbs_numpy(m, np.concatenate([np.zeros(3), _fist_pose()]))
    np.testing.assert_allclose(vn, v1, atol=1e-5)


def test_smplx_left_equals_mirrored_right():
    import smplx
    import torch
    kw = dict(model_path=ASSETS, ext='npz', use_pca=False, flat_hand_mean=True)
    right = smplx.MANO(is_rhand=True, **kw).double()
    left = smplx.MANO(is_rhand=False, **kw).double()
    rng = np.random.default_rng(0)
    hand = ph.sample_finger_poses(4, rng)
    orient = rng.normal(0, 0.6, (4, 3))
    betas = rng.normal(0, 1, (4, 10))
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        out_r = right(
            global_orient=t(orient), hand_pose=t(hand), betas=t(betas))
        out_l = left(
            global_orient=t(ph.mirror_axis_angle_pose(orient)),
            hand_pose=t(ph.mirror_axis_angle_pose(hand)),
            betas=t(betas))
    np.testing.assert_allclose(
        out_l.vertices.numpy(), out_r.vertices.numpy() * MIRROR, atol=1e-6)
    np.testing.assert_allclose(
        out_l.joints.numpy(), out_r.joints.numpy() * MIRROR, atol=1e-6)


def test_smplx_pca_mode_uses_hands_mean():
    import smplx
    import torch
    mano = smplx.MANO(
        model_path=ASSETS,
        is_rhand=True,
        ext='npz',
        use_pca=True,
        num_pca_comps=6,
        flat_hand_mean=False)
    with torch.no_grad():
        out = mano(
            hand_pose=torch.zeros(1, 6),
            global_orient=torch.zeros(1, 3),
            betas=torch.zeros(1, 10),
            return_full_pose=True)
    m = _load('RIGHT')
    np.testing.assert_allclose(
        out.full_pose[0, 3:].numpy(), m['hands_mean'], atol=1e-6)


# ---------------------------------------------------------- reproducible


@pytest.mark.parametrize('side', SIDES)
def test_regenerating_reproduces_the_shipped_files(models, regenerated, side):
    shipped, new = models[side], regenerated[side]
    assert set(new) == set(shipped)
    for k in shipped:
        a, b = np.asarray(shipped[k]), np.asarray(new[k])
        assert a.shape == b.shape, k
        if a.dtype.kind in 'iuUS':
            np.testing.assert_array_equal(a, b, err_msg=k)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=k)


def test_generation_is_deterministic(regenerated):
    again = ph.build_hand_model(seed=0, is_rhand=True)
    for k, v in regenerated['RIGHT'].items():
        assert np.asarray(v).tobytes() == np.asarray(again[k]).tobytes(), k
    other = ph.build_hand_model(seed=1, is_rhand=True)
    np.testing.assert_array_equal(other['v_template'], again['v_template'])
    assert not np.allclose(other['hands_coeffs'], again['hands_coeffs'])
