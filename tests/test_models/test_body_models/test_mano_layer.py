# Copyright (c) mmhand2p contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
import torch

from mmhand2p.models.body_models import (MANO_FINGERTIP_VERTEX_IDS, MANOLayer,
                                         load_mano_file)
from mmhand2p.registry import MODELS
from mmhand2p.utils.geometry import (axis_angle_to_rot6d, mirror_axis_angle,
                                     mirror_points)

M = np.array([-1.0, 1.0, 1.0])


def mirrored_model(d):
    """The exact mirror image (x -> -x) of a MANO model's arrays.

    Pose correctives too: the pose feature (R - I)_ij of the mirrored pose is
    m_i m_j (R - I)_ij, and offsets mirror by m_c, so
    posedirs'[v, c, (j, a, b)] = m_c m_a m_b posedirs[v, c, (j, a, b)].
    """
    out = dict(d)
    out['v_template'] = d['v_template'] * M
    out['J'] = d['J'] * M
    out['shapedirs'] = d['shapedirs'] * M[None, :, None]
    sign_ab = np.outer(M, M).reshape(-1)  # (9,) over (a, b)
    sign_feat = np.tile(sign_ab, 15)  # (135,)
    out['posedirs'] = d['posedirs'] * M[None, :, None] * sign_feat[None, None]
    out['f'] = np.asarray(d['f'])[:, [0, 2, 1]]
    mirror_aa = np.tile([1.0, -1.0, -1.0], 15)
    out['hands_mean'] = d['hands_mean'] * mirror_aa
    out['hands_components'] = d['hands_components'] * mirror_aa[None]
    return out


@pytest.fixture(scope='module')
def mirror_pair_dir(shared_fixtures, tmp_path_factory):
    """Fixture right model + its exact mirror as the left model."""
    right = load_mano_file(
        osp.join(shared_fixtures, 'mano_chumpy', 'MANO_RIGHT.pkl'))
    out = tmp_path_factory.mktemp('mano_mirror')
    for name, d in (('RIGHT', right), ('LEFT', mirrored_model(right))):
        np.savez(out / f'MANO_{name}.npz',
                 **{k: np.asarray(v) for k, v in d.items()})
    return str(out)


def _random_inputs(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = 0.5 * torch.randn(batch, 16, 3, generator=g)
    betas = torch.randn(batch, 10, generator=g)
    transl = 0.1 * torch.randn(batch, 3, generator=g)
    return pose, betas, transl


@pytest.mark.parametrize('flat_hand_mean', [True, False])
def test_left_is_mirror_of_right(mirror_pair_dir, flat_hand_mean):
    layer = MANOLayer(mirror_pair_dir, flat_hand_mean=flat_hand_mean,
                      orient_faces=False)
    assert not layer.left_shapedirs_fixed  # left x-shapedirs = -right's
    pose, betas, transl = _random_inputs()
    out = layer(
        pose=torch.stack([pose, mirror_axis_angle(pose)], 1),
        betas=torch.stack([betas, betas], 1),
        transl=torch.stack([transl, mirror_points(transl)], 1))
    assert out.vertices.shape == (3, 2, 778, 3)
    assert out.joints.shape == (3, 2, 21, 3)
    assert torch.allclose(
        out.vertices[:, 1], mirror_points(out.vertices[:, 0]), atol=1e-5)
    assert torch.allclose(out.joints[:, 1], mirror_points(out.joints[:, 0]),
                          atol=1e-5)
    # and the mirror is not trivially satisfied: the unmirrored pose differs
    out2 = layer(pose=torch.stack([pose, pose], 1),
                 betas=torch.stack([betas, betas], 1))
    assert (out2.vertices[:, 1] -
            mirror_points(out2.vertices[:, 0])).abs().max() > 1e-3


def test_joint_order_and_fingertips(mirror_pair_dir):
    layer = MANOLayer(mirror_pair_dir, orient_faces=False)
    pose, betas, _ = _random_inputs(2, seed=1)
    out = layer(pose=torch.stack([pose, pose], 1),
                betas=torch.stack([betas, betas], 1))
    # wrist first (MANO joint 0), tips are the fingertip vertices
    assert torch.equal(out.joints[:, :, 0], out.joints_mano[:, :, 0])
    tips = out.vertices[:, :, list(MANO_FINGERTIP_VERTEX_IDS)]
    assert torch.equal(out.joints[:, :, [4, 8, 12, 16, 20]], tips)
    # middle MCP (9) is MANO joint 4, thumb CMC (1) is MANO joint 13
    assert torch.equal(out.joints[:, :, 9], out.joints_mano[:, :, 4])
    assert torch.equal(out.joints[:, :, 1], out.joints_mano[:, :, 13])


def test_6d_pca_and_mean_semantics(mirror_pair_dir):
    layer = MANOLayer(mirror_pair_dir, orient_faces=False)
    pose, betas, _ = _random_inputs(2, seed=2)
    pose2 = torch.stack([pose, pose.flip(0)], 1)
    betas2 = torch.stack([betas, betas], 1)
    ref = layer(pose=pose2, betas=betas2)
    via6d = layer(pose_6d=axis_angle_to_rot6d(pose2), betas=betas2)
    assert torch.allclose(ref.vertices, via6d.vertices, atol=1e-5)

    # PCA with all 45 components: coefficients that reproduce pose2
    comps = layer.hands_components  # (2, 45, 45)
    fingers = pose2[:, :, 1:].reshape(2, 2, 45) - layer.hands_mean.reshape(
        1, 2, 45)
    coeffs = torch.einsum('bhj,hkj->bhk', fingers,
                          torch.linalg.inv(comps).transpose(1, 2))
    via_pca = layer(pose_pca=coeffs, global_orient=pose2[:, :, 0],
                    betas=betas2)
    assert torch.allclose(ref.vertices, via_pca.vertices, atol=1e-4)

    # flat_hand_mean=False adds hands_mean to the finger pose
    layer_mean = MANOLayer(mirror_pair_dir, flat_hand_mean=False,
                           orient_faces=False)
    zero = torch.zeros(1, 2, 16, 3)
    mean_pose = torch.cat(
        [torch.zeros(1, 2, 1, 3), layer.hands_mean[None]], dim=2)
    assert torch.allclose(
        layer_mean(pose=zero).vertices,
        layer(pose=mean_pose).vertices, atol=1e-6)


def test_bad_pose_shape_message(mirror_pair_dir):
    layer = MANOLayer(mirror_pair_dir, orient_faces=False)
    with pytest.raises(ValueError,
                       match=r'pose must have shape \(B, 2, 16, 3'):
        layer(pose=torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match='exactly one'):
        layer(pose=torch.zeros(1, 2, 16, 3),
              pose_6d=torch.zeros(1, 2, 16, 6))


def test_registered_and_no_mano_arrays_in_state_dict(mirror_pair_dir):
    layer = MODELS.build(
        dict(type='MANOLayer', model_path=mirror_pair_dir,
             orient_faces=False))
    assert isinstance(layer, MANOLayer)
    assert layer.state_dict() == {}  # model arrays come from model_path
    assert list(layer.parameters()) == []


def test_face_winding_is_made_outward(tmp_path):
    """A model whose faces wind inwards gets them flipped at load."""
    from mmhand2p.utils.mesh import (boundary_loops, cap_boundary_loops,
                                     signed_volume)

    # a closed-but-for-one-hole model: an octahedron without one face is
    # too small for MANO's shapes, so use an icosphere-like UV sphere with
    # the MANO array layout on a tiny 'hand'
    n_lat, n_lon = 8, 12
    verts = [[0, 0, 1.0]]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph),
                          np.cos(th)])
    verts = np.asarray(verts)
    faces = []
    for j in range(n_lon):  # top cap, outward (counter-clockwise from out)
        faces.append([0, 1 + j, 1 + (j + 1) % n_lon])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a = 1 + i * n_lon + j
            b = 1 + i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            faces += [[a, c, d], [a, d, b]]
    faces = np.asarray(faces)  # open at the bottom ring
    assert len(boundary_loops(faces)) == 1
    cv, cf = cap_boundary_loops(verts, faces)
    assert signed_volume(cv, cf) > 0
    nv, nj = len(verts), 16
    rng = np.random.default_rng(0)
    w = rng.random((nv, nj))
    model = dict(
        v_template=verts * 0.05, f=faces[:, [0, 2, 1]],
        J_regressor=np.full((nj, nv), 1.0 / nv),
        kintree_table=np.stack([
            np.array([2**32 - 1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13,
                      14]), np.arange(nj)]),
        weights=w / w.sum(1, keepdims=True),
        posedirs=np.zeros((nv, 3, 135)), shapedirs=np.zeros((nv, 3, 10)),
        hands_components=np.eye(45), hands_mean=np.zeros(45))
    for side in ('RIGHT', 'LEFT'):
        np.savez(tmp_path / f'MANO_{side}.npz', **model)
    layer = MANOLayer(str(tmp_path))
    assert layer.faces_flipped == [True, True]
    assert np.array_equal(layer.faces[0].numpy(), faces)


def test_rigid_transform_mano_matches_moved_mesh(mirror_pair_dir):
    """Moving MANO params with rigid_transform_mano == moving the mesh."""
    from mmhand2p.utils.geometry import (axis_angle_to_matrix,
                                         rigid_transform_mano)
    layer = MANOLayer(mirror_pair_dir, orient_faces=False)
    pose, betas, transl = _random_inputs(2, seed=3)
    pose2 = torch.stack([pose, pose.flip(0)], 1)
    betas2 = torch.stack([betas, betas.flip(0)], 1)
    transl2 = torch.stack([transl, -transl], 1)
    out = layer(pose=pose2, betas=betas2, transl=transl2)
    rot = axis_angle_to_matrix(torch.tensor([0.4, -1.1, 0.3]))
    trans = torch.tensor([0.2, -0.1, 1.5])
    root = layer(
        pose=torch.zeros_like(pose2), betas=betas2).joints_mano[:, :, 0]
    orient, new_t = rigid_transform_mano(pose2[:, :, 0], transl2, root, rot,
                                         trans)
    moved = layer(
        pose=torch.cat([orient[:, :, None], pose2[:, :, 1:]], 2),
        betas=betas2, transl=new_t)
    expected = out.vertices @ rot.T + trans
    assert torch.allclose(moved.vertices, expected, atol=1e-5)
    # the naive update (rotate transl without the root joint) is wrong
    naive = layer(
        pose=torch.cat([orient[:, :, None], pose2[:, :, 1:]], 2),
        betas=betas2, transl=transl2 @ rot.T + trans)
    assert (naive.vertices - expected).abs().max() > 1e-3
