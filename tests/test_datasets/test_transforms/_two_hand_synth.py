# Copyright (c) mmhand2p contributors. All rights reserved.
"""Synthetic two-hand samples in the data-info format of
``docs/data_pipeline.md`` (helpers for the transform tests)."""
import numpy as np
import torch

from mmhand2p.utils.geometry import project_points

#: a realistic camera: focal ~1200 px, principal point off the image centre
IMG_HW = (800, 1000)
K_SQUARE = np.array([[1200.0, 0.0, 610.0], [0.0, 1200.0, 380.0],
                     [0.0, 0.0, 1.0]])
#: fx != fy
K_ANISO = np.array([[1260.0, 0.0, 455.5], [0.0, 1140.0, 421.0],
                    [0.0, 0.0, 1.0]])


def project(points, k):
    """numpy wrapper of ``project_points`` (float64)."""
    return project_points(
        torch.from_numpy(np.asarray(points, np.float64)),
        torch.from_numpy(np.asarray(k, np.float64))).numpy()


def finish_info(joints_3d,
                k,
                img_hw=IMG_HW,
                valid_3d=None,
                mano=None,
                expand=1.2):
    """Complete a data info from camera-frame joints ``(2, 21, 3)``."""
    h, w = img_hw
    joints_3d = np.asarray(joints_3d, np.float64)
    if valid_3d is None:
        valid_3d = np.ones((2, 21), np.float32)
    j2d = project(joints_3d, k)
    inside = ((j2d[..., 0] >= 0) & (j2d[..., 0] < w) & (j2d[..., 1] >= 0) &
              (j2d[..., 1] < h))
    valid_2d = valid_3d * inside
    hand_valid = valid_3d.sum(1) > 0
    bboxes = np.zeros((2, 4), np.float32)
    for hnd in range(2):
        m = valid_2d[hnd] > 0
        if hand_valid[hnd] and m.any():
            lo, hi = j2d[hnd, m].min(0), j2d[hnd, m].max(0)
            c, half = (lo + hi) / 2, (hi - lo) / 2 * expand
            bboxes[hnd] = np.concatenate([c - half, c + half])
    info = dict(
        img_path='synthetic.png',
        img_id=7,
        ori_shape=(h, w),
        hand_type='interacting' if hand_valid.all() else
        ('right' if hand_valid[0] else 'left'),
        cam_intrinsics=np.asarray(k, np.float32),
        joints_3d=joints_3d.astype(np.float32),
        joints_3d_valid=np.asarray(valid_3d, np.float32),
        joints_2d=j2d.astype(np.float32),
        joints_2d_valid=valid_2d.astype(np.float32),
        hand_valid=hand_valid,
        bboxes=bboxes)
    if mano is not None:
        info.update(mano)
    return info


def random_joints(rng, depth=0.6):
    """Two random 'hands' (wrist + 20 joints within ~10 cm) in front of the
    camera, right hand left of the principal point's ray in x... roughly."""
    wrists = np.array([[0.06, 0.01, depth], [-0.07, 0.03, depth + 0.05]])
    wrists = wrists + rng.normal(scale=0.02, size=(2, 3))
    offs = rng.uniform(-0.09, 0.09, size=(2, 21, 3))
    offs[:, 0] = 0
    return wrists[:, None] + offs


def random_info(seed=0, k=K_SQUARE, img_hw=IMG_HW, with_mano=True):
    """Random joints + random (not joint-consistent) MANO params."""
    rng = np.random.default_rng(seed)
    joints = random_joints(rng)
    valid = (rng.random((2, 21)) > 0.1).astype(np.float32)
    valid[:, 0] = 1
    mano = None
    if with_mano:
        mano = dict(
            mano_pose=rng.normal(scale=0.5,
                                 size=(2, 16, 3)).astype(np.float32),
            mano_betas=rng.normal(size=(2, 10)).astype(np.float32),
            mano_transl=rng.normal(scale=0.2, size=(2, 3)).astype(np.float32),
            mano_root_joint=rng.normal(scale=0.05,
                                       size=(2, 3)).astype(np.float32),
            mano_valid=np.array([True, True]))
    return finish_info(joints, k, img_hw, valid, mano)


def mano_info(layer, seed=0, k=K_SQUARE, img_hw=IMG_HW):
    """A sample whose joints come from ``layer`` (a ``MANOLayer``), so the
    MANO params and the joints agree; also returns the vertices."""
    g = torch.Generator().manual_seed(seed)
    pose = 0.4 * torch.randn(1, 2, 16, 3, generator=g, dtype=torch.float64)
    pose[:, :, 0] = 1.2 * torch.randn(
        1, 2, 3, generator=g, dtype=torch.float64)
    betas = torch.randn(1, 2, 10, generator=g, dtype=torch.float64)
    target = torch.tensor([[0.06, 0.01, 0.6], [-0.07, 0.03, 0.65]],
                          dtype=torch.float64)
    target = target + 0.02 * torch.randn(
        2, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        out = layer(pose=pose.float(), betas=betas.float())
        transl = target - out.joints[0, :, 0].double()
        out = layer(
            pose=pose.float(),
            betas=betas.float(),
            transl=transl[None].float())
        rest = layer(pose=torch.zeros(1, 2, 16, 3), betas=betas.float())
    mano = dict(
        mano_pose=pose[0].numpy().astype(np.float32),
        mano_betas=betas[0].numpy().astype(np.float32),
        mano_transl=transl.numpy().astype(np.float32),
        mano_root_joint=rest.joints_mano[0, :, 0].numpy().astype(np.float32),
        mano_valid=np.array([True, True]))
    info = finish_info(out.joints[0].numpy(), k, img_hw, mano=mano)
    info['vertices'] = out.vertices[0].numpy().astype(np.float32)
    return info


def run_mano(layer, results):
    """Mesh (2, 778, 3) and joints (2, 21, 3) of the MANO params in
    ``results``, float64 numpy."""
    with torch.no_grad():
        out = layer(
            pose=torch.from_numpy(np.asarray(results['mano_pose']))[None],
            betas=torch.from_numpy(np.asarray(results['mano_betas']))[None],
            transl=torch.from_numpy(np.asarray(results['mano_transl']))[None])
    return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


def blob_image(points, img_hw=IMG_HW, sigma=2.0):
    """A float32 image with a Gaussian blob at each sub-pixel ``(u, v)``,
    each in its own channel (at most 3)."""
    h, w = img_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), np.float32)
    for c, (u, v) in enumerate(points):
        img[...,
            c] = 255.0 * np.exp(-((xx - u)**2 + (yy - v)**2) / (2 * sigma**2))
    return img


def blob_centroid(channel):
    """Intensity centroid (u, v) of a 2D array."""
    channel = np.asarray(channel, np.float64)
    h, w = channel.shape
    yy, xx = np.mgrid[0:h, 0:w]
    s = channel.sum()
    return np.array([(xx * channel).sum() / s, (yy * channel).sum() / s])
