# Copyright (c) mmhand2p contributors. All rights reserved.
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mmhand2p.conventions import (REQUIRED_KEYS, ManoFileError,
                                  convert_mano_file, fix_left_shapedirs,
                                  load_mano_file)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def chumpy_dir(shared_fixtures):
    return osp.join(shared_fixtures, 'mano_chumpy')


def independent_lbs(d, betas, pose):
    """Linear blend skinning written from the MANO paper's equations, in
    numpy/scipy, sharing no code with smplx or mmhand2p.

    Args:
        d (dict): model arrays. betas (10,). pose (16, 3) axis-angle.

    Returns:
        (778, 3) vertices.
    """
    v = d['v_template'] + d['shapedirs'] @ betas
    joints = d['J_regressor'] @ v
    rots = Rotation.from_rotvec(pose).as_matrix()
    feat = (rots[1:] - np.eye(3)).reshape(-1)
    v = v + d['posedirs'] @ feat
    parents = d['kintree_table'][0].astype(np.int64)
    world = np.zeros((16, 4, 4))
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0)
        world[j] = local if j == 0 else world[parents[j]] @ local
    # remove the rest-pose joint location
    skin = world.copy()
    skin[:, :3, 3] -= np.einsum('jab,jb->ja', world[:, :3, :3], joints)
    t = np.einsum('vj,jab->vab', d['weights'], skin)
    vh = np.concatenate([v, np.ones((len(v), 1))], 1)
    return np.einsum('vab,vb->va', t, vh)[:, :3]


def test_load_chumpy_pickle_without_chumpy(chumpy_dir):
    assert 'chumpy' not in sys.modules
    d = load_mano_file(osp.join(chumpy_dir, 'MANO_RIGHT.pkl'))
    assert set(REQUIRED_KEYS) <= set(d)
    assert isinstance(d['shapedirs'], np.ndarray)
    assert d['shapedirs'].shape == (778, 3, 10)
    assert isinstance(d['J_regressor'], np.ndarray)  # sparse -> dense
    assert d['J_regressor'].shape == (16, 778)
    assert d['bs_style'] == 'lbs'
    assert 'chumpy' not in sys.modules


def test_converted_fixture_matches_independent_lbs(chumpy_dir, tmp_path):
    import smplx
    src = osp.join(chumpy_dir, 'MANO_RIGHT.pkl')
    dst = str(tmp_path / 'MANO_RIGHT.npz')
    info = convert_mano_file(src, dst)
    assert info['num_vertices'] == 778 and osp.isfile(dst)
    d = load_mano_file(dst)
    rng = np.random.default_rng(0)
    betas = rng.normal(size=10)
    pose = rng.normal(scale=0.4, size=(16, 3))
    expected = independent_lbs(d, betas, pose)

    model = smplx.MANO(dst, is_rhand=True, ext='npz', use_pca=False,
                       flat_hand_mean=True, dtype=torch.float64)
    out = model(betas=torch.tensor(betas)[None],
                global_orient=torch.tensor(pose[:1].reshape(1, 3)),
                hand_pose=torch.tensor(pose[1:].reshape(1, 45)))
    # smplx's Rodrigues adds 1e-8 to the angle: agreement to 0.1 micrometre
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), expected,
                               rtol=0, atol=1e-7)
    assert np.abs(expected - d['v_template']).max() > 1e-3  # it did move
    # and the arrays equal those read from the chumpy pickle
    d_pkl = load_mano_file(src)
    for k in REQUIRED_KEYS:
        np.testing.assert_array_equal(np.asarray(d[k]), np.asarray(d_pkl[k]))


def test_left_fix_applied_exactly_when_equal(chumpy_dir):
    right = load_mano_file(osp.join(chumpy_dir, 'MANO_RIGHT.pkl'))
    left = load_mano_file(osp.join(chumpy_dir, 'MANO_LEFT.pkl'))
    fixed, applied = fix_left_shapedirs(left, right)
    assert applied
    np.testing.assert_array_equal(fixed['shapedirs'][:, 0],
                                  -right['shapedirs'][:, 0])
    np.testing.assert_array_equal(fixed['shapedirs'][:, 1:],
                                  right['shapedirs'][:, 1:])
    assert left['shapedirs'] is not fixed['shapedirs']  # input untouched
    # an already fixed left model is left alone
    again, applied2 = fix_left_shapedirs(fixed, right)
    assert not applied2 and again is fixed
    # and so is one that differs anywhere in x
    other = dict(left, shapedirs=left['shapedirs'].copy())
    other['shapedirs'][5, 0, 3] += 1e-4
    assert not fix_left_shapedirs(other, right)[1]


def test_mano_layer_fixes_released_left(chumpy_dir):
    from mmhand2p.models.body_models import MANOLayer
    layer = MANOLayer(model_path=chumpy_dir, orient_faces=False)
    assert layer.left_shapedirs_fixed
    right_sd = layer.right.shapedirs[:, 0]
    assert torch.allclose(layer.left.shapedirs[:, 0], -right_sd)


def test_convert_tool_and_no_partial_output(chumpy_dir, tmp_path):
    out = tmp_path / 'converted'
    cmd = [sys.executable, osp.join(REPO, 'tools/misc/convert_mano.py'),
           chumpy_dir, str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out)) == ['MANO_LEFT.npz', 'MANO_RIGHT.npz']
    assert 'negated' in res.stdout  # the left fix is reported
    left = np.load(out / 'MANO_LEFT.npz')
    right = np.load(out / 'MANO_RIGHT.npz')
    np.testing.assert_array_equal(left['shapedirs'][:, 0],
                                  -right['shapedirs'][:, 0])
    # a bad input fails with the path named and writes nothing
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'MANO_RIGHT.pkl').write_bytes(b'not a pickle')
    (bad / 'MANO_LEFT.pkl').write_bytes(
        open(osp.join(chumpy_dir, 'MANO_LEFT.pkl'), 'rb').read())
    out2 = tmp_path / 'converted2'
    res = subprocess.run(cmd[:2] + [str(bad), str(out2)],
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert 'MANO_RIGHT.pkl' in res.stderr
    assert not out2.exists() or os.listdir(out2) == []


def test_missing_path_names_it(tmp_path):
    from mmhand2p.models.body_models import MANOLayer
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        MANOLayer(model_path=missing)
    with pytest.raises(FileNotFoundError, match='MANO_RIGHT'):
        MANOLayer(model_path=str(tmp_path))  # a folder without models
    with pytest.raises(FileNotFoundError, match='x.pkl'):
        load_mano_file(str(tmp_path / 'x.pkl'))


def test_missing_key_names_key_and_path(chumpy_dir, tmp_path):
    d = load_mano_file(osp.join(chumpy_dir, 'MANO_RIGHT.pkl'))
    del d['weights']
    path = tmp_path / 'MANO_RIGHT.pkl'
    with open(path, 'wb') as f:
        pickle.dump(d, f, protocol=2)
    with pytest.raises(ManoFileError, match=r"weights") as err:
        load_mano_file(str(path))
    assert str(path) in str(err.value)


def test_bad_shape_is_reported(chumpy_dir, tmp_path):
    d = load_mano_file(osp.join(chumpy_dir, 'MANO_RIGHT.pkl'))
    d['weights'] = d['weights'][:, :5]
    path = tmp_path / 'MANO_RIGHT.npz'
    np.savez(path, **{k: np.asarray(v) for k, v in d.items()})
    with pytest.raises(ManoFileError, match=r'weights has shape \(778, 5\)'):
        load_mano_file(str(path))


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


@pytest.mark.parametrize('payload', [[1, 2, 3], {'a': 1}, _Evil()])
def test_not_a_mano_pickle(tmp_path, payload):
    path = tmp_path / 'MANO_RIGHT.pkl'
    with open(path, 'wb') as f:
        pickle.dump(payload, f, protocol=2)
    with pytest.raises(ManoFileError) as err:
        load_mano_file(str(path))
    assert str(path) in str(err.value)


def test_truncated_file(chumpy_dir, tmp_path):
    data = open(osp.join(chumpy_dir, 'MANO_RIGHT.pkl'), 'rb').read()
    path = tmp_path / 'MANO_RIGHT.pkl'
    path.write_bytes(data[:1000])
    with pytest.raises(ManoFileError, match='not a readable MANO model'):
        load_mano_file(str(path))
