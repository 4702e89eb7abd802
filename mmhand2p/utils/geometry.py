# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pure tensor geometry shared by every component.

Conventions (see ``docs/conventions.md``):

* Rotations act on column vectors: ``p' = R @ p``.
* Axis-angle: a vector whose direction is the axis and whose norm is the angle
  in radians (right-hand rule), as used by MANO.
* 6D rotation (Zhou et al., CVPR 2019): the first two **columns** of the
  rotation matrix, concatenated: ``[R00, R10, R20, R01, R11, R21]``.
* Mirroring ("show a left hand as a right hand") reflects through the plane
  ``x = 0`` of the frame the quantity lives in: points ``(x, y, z) ->
  (-x, y, z)``, rotations ``R -> M R M`` with ``M = diag(-1, 1, 1)``, which
  for axis-angle is ``(x, y, z) -> (x, -y, -z)``. The bundled and the released
  left MANO models are mirror images of the right ones through ``x = 0`` of
  the MANO frame, so a left hand with pose ``theta`` and translation ``t`` is
  the mirror of a right hand with pose ``mirror(theta)`` (see
  ``tests/test_models/test_body_models/test_mano_layer.py``).

All functions accept any leading batch dimensions ``(...)`` and are
differentiable; none of them needs CUDA.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'axis_angle_to_matrix', 'matrix_to_axis_angle', 'matrix_to_quaternion',
    'quaternion_to_axis_angle', 'quaternion_to_matrix', 'rot6d_to_matrix',
    'matrix_to_rot6d', 'axis_angle_to_rot6d', 'rot6d_to_axis_angle',
    'mirror_points', 'mirror_axis_angle', 'mirror_matrix', 'swap_hands',
    'project_points', 'procrustes_align', 'skew', 'rigid_transform_mano'
]

_EPS = 1e-8


def skew(v: Tensor) -> Tensor:
    """Cross-product matrices.

    Args:
        v (Tensor): Vectors of shape ``(..., 3)``.

    Returns:
        Tensor: ``(..., 3, 3)`` matrices ``[v]_x`` with ``[v]_x @ u = v x u``.
    """
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(
        v.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula, stable (and with finite gradients) at angle 0.

    Args:
        axis_angle (Tensor): ``(..., 3)`` axis-angle vectors.

    Returns:
        Tensor: ``(..., 3, 3)`` rotation matrices.
    """
    angle2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]
    small = angle2 < 1e-12
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle2), angle2))
    # sin(a)/a and (1-cos(a))/a^2 with their Taylor series near 0
    sinc = torch.where(small, 1 - angle2 / 6, torch.sin(angle) / angle)
    cosc = torch.where(small, 0.5 - angle2 / 24,
                       (1 - torch.cos(angle)) / (angle * angle))
    k = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sinc * k + cosc * (k @ k)


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Uses Shepperd's method: of the four algebraically equivalent formulas the
    one with the largest denominator is chosen, so it is accurate for every
    rotation including angles near pi.

    Args:
        matrix (Tensor): ``(..., 3, 3)`` rotation matrices.

    Returns:
        Tensor: ``(..., 4)`` quaternions.
    """
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * (w^2, x^2, y^2, z^2)
    sq = torch.stack([
        1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
        1 - m00 - m11 + m22
    ], dim=-1)
    # 2 * |(w, x, y, z)|. Clamped away from 0 before the sqrt: the branches
    # that are not selected still get a (zero) gradient, and 0 * d sqrt(0)
    # would be NaN (e.g. at the identity, where x = y = z = 0).
    q_abs = torch.sqrt(sq.clamp(min=1e-12))
    cand = torch.stack([
        torch.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], -1),
    ], dim=-2) / (2 * q_abs.clamp(min=0.1)[..., None])
    best = q_abs.argmax(dim=-1)
    quat = torch.gather(
        cand, -2, best[..., None, None].expand(best.shape + (1, 4)))[..., 0, :]
    quat = quat / quat.norm(dim=-1, keepdim=True).clamp(min=_EPS)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quat: Tensor) -> Tensor:
    """Unit quaternions ``(w, x, y, z)`` to axis-angle with angle in [0, pi].

    Args:
        quat (Tensor): ``(..., 4)`` quaternions (need not have ``w >= 0``).

    Returns:
        Tensor: ``(..., 3)`` axis-angle vectors.
    """
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    w, xyz = quat[..., :1], quat[..., 1:]
    sq = (xyz * xyz).sum(-1, keepdim=True)
    small = sq < 1e-12
    # a norm whose gradient stays finite at 0 (the small branch does not
    # use it; torch.where would still multiply its NaN gradient by 0)
    sin_half = torch.sqrt(torch.where(small, torch.ones_like(sq), sq))
    half = torch.atan2(sin_half, w)
    # 2 atan2(s, w) / s -> 2 / w as s -> 0
    factor = torch.where(small, 2.0 / w.clamp(min=_EPS), 2 * half / sin_half)
    return xyz * factor


def quaternion_to_matrix(quat: Tensor) -> Tensor:
    """Quaternions ``(w, x, y, z)`` (normalised here) to rotation matrices.

    Args:
        quat (Tensor): ``(..., 4)``.

    Returns:
        Tensor: ``(..., 3, 3)``.
    """
    q = quat / quat.norm(dim=-1, keepdim=True).clamp(min=_EPS)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Rotation matrices to axis-angle (angle in [0, pi]).

    Args:
        matrix (Tensor): ``(..., 3, 3)``.

    Returns:
        Tensor: ``(..., 3)``.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """6D rotation representation to rotation matrices (Gram-Schmidt).

    Args:
        rot6d (Tensor): ``(..., 6)``: the first two columns ``a1, a2`` of a
            (not necessarily orthonormal) matrix, ``[a1, a2]``.

    Returns:
        Tensor: ``(..., 3, 3)`` with columns ``b1, b2, b1 x b2``.
    """
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp(min=_EPS)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp(min=_EPS)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: Tensor) -> Tensor:
    """Rotation matrices to the 6D representation (first two columns).

    Args:
        matrix (Tensor): ``(..., 3, 3)``.

    Returns:
        Tensor: ``(..., 6)``.
    """
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def axis_angle_to_rot6d(axis_angle: Tensor) -> Tensor:
    """``(..., 3)`` axis-angle to ``(..., 6)`` 6D rotations."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: Tensor) -> Tensor:
    """``(..., 6)`` 6D rotations to ``(..., 3)`` axis-angle."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def mirror_points(points: Tensor) -> Tensor:
    """Reflect points through the plane ``x = 0``: ``(x, y, z) -> (-x, y, z)``.

    Args:
        points (Tensor): ``(..., 3)``.

    Returns:
        Tensor: ``(..., 3)``.
    """
    return points * points.new_tensor([-1.0, 1.0, 1.0])


def mirror_axis_angle(axis_angle: Tensor) -> Tensor:
    """Mirror rotations given as axis-angle: ``(x, y, z) -> (x, -y, -z)``.

    This is ``M R M`` with ``M = diag(-1, 1, 1)`` written for axis-angle; it
    maps a right-hand MANO pose to the left-hand pose that produces the
    mirrored mesh, and back (it is an involution).

    Args:
        axis_angle (Tensor): ``(..., 3)``, e.g. a MANO pose ``(B, 16, 3)``.

    Returns:
        Tensor: ``(..., 3)``.
    """
    return axis_angle * axis_angle.new_tensor([1.0, -1.0, -1.0])


def mirror_matrix(matrix: Tensor) -> Tensor:
    """Mirror rotation matrices: ``R -> M R M`` with ``M = diag(-1, 1, 1)``.

    Args:
        matrix (Tensor): ``(..., 3, 3)``.

    Returns:
        Tensor: ``(..., 3, 3)``.
    """
    sign = matrix.new_tensor([-1.0, 1.0, 1.0])
    return matrix * sign[:, None] * sign[None, :]


def swap_hands(x: Tensor, dim: int = 1) -> Tensor:
    """Swap the right (index 0) and left (index 1) entries of the hand axis.

    Args:
        x (Tensor): A tensor whose ``dim`` has size 2, e.g. ``(B, 2, 21, 3)``.
        dim (int): The hand axis. Defaults to 1.

    Returns:
        Tensor: Same shape, hands swapped.
    """
    if x.shape[dim] != 2:
        raise ValueError(f'swap_hands expects size 2 on dim {dim}, got shape '
                         f'{tuple(x.shape)}')
    return x.flip(dim)


def project_points(points: Tensor,
                   intrinsics: Tensor,
                   return_depth: bool = False) -> Tensor:
    """Full perspective projection with pinhole intrinsics.

    Args:
        points (Tensor): ``(..., N, 3)`` points in the camera frame (metres,
            OpenCV axes: x right, y down, z forward).
        intrinsics (Tensor): ``(..., 3, 3)`` matrices ``[[fx, 0, cx],
            [0, fy, cy], [0, 0, 1]]`` broadcastable to the points' batch.
        return_depth (bool): Also return z as a third coordinate (2.5D).

    Returns:
        Tensor: ``(..., N, 2)`` pixel coordinates, or ``(..., N, 3)`` with
        depth in metres if ``return_depth``.
    """
    z = points[..., 2:3]
    z_safe = torch.where(z.abs() < _EPS, torch.full_like(z, _EPS), z)
    xy = points[..., :2] / z_safe
    fx = intrinsics[..., 0, 0, None]
    fy = intrinsics[..., 1, 1, None]
    cx = intrinsics[..., 0, 2, None]
    cy = intrinsics[..., 1, 2, None]
    skew_ = intrinsics[..., 0, 1, None]
    u = fx * xy[..., 0] + skew_ * xy[..., 1] + cx
    v = fy * xy[..., 1] + cy
    uv = torch.stack([u, v], dim=-1)
    return torch.cat([uv, z], dim=-1) if return_depth else uv


def procrustes_align(
    pred: Tensor,
    target: Tensor,
    mask: Optional[Tensor] = None,
    scale: bool = True
) -> Tuple[Tensor, Tuple[Tensor, Tensor, Tensor]]:
    """Batched similarity (or rigid) Procrustes alignment of ``pred`` to
    ``target`` (Umeyama's closed form, reflections excluded).

    Args:
        pred (Tensor): ``(B, N, 3)`` points to align.
        target (Tensor): ``(B, N, 3)`` reference points.
        mask (Tensor, optional): ``(B, N)`` weights/validity; invalid points do
            not take part in the fit but are still transformed.
        scale (bool): Fit a scale factor. Defaults to True.

    Returns:
        tuple: ``aligned`` ``(B, N, 3)`` and ``(s (B,), R (B, 3, 3),
        t (B, 3))`` with ``aligned = s * pred @ R.T + t``.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError('procrustes_align expects (B, N, 3) inputs of the '
                         f'same shape, got {tuple(pred.shape)} and '
                         f'{tuple(target.shape)}')
    if mask is None:
        w = pred.new_ones(pred.shape[:2])
    else:
        w = mask.to(pred.dtype)
    wsum = w.sum(-1, keepdim=True).clamp(min=_EPS)  # (B, 1)
    mu_p = (w[..., None] * pred).sum(1) / wsum
    mu_t = (w[..., None] * target).sum(1) / wsum
    pc = pred - mu_p[:, None]
    tc = target - mu_t[:, None]
    var_p = (w * (pc * pc).sum(-1)).sum(-1) / wsum[:, 0]
    cov = torch.einsum('bn,bni,bnj->bij', w, tc, pc) / wsum[..., None]
    u, s, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones_like(s)
    diag[:, 2] = d
    rot = u @ torch.diag_embed(diag) @ vh
    if scale:
        s_fit = (s * diag).sum(-1) / var_p.clamp(min=_EPS)
    else:
        s_fit = torch.ones_like(var_p)
    trans = mu_t - s_fit[:, None] * (mu_p[:, None] @ rot.transpose(1, 2))[:, 0]
    aligned = (s_fit[:, None, None] * pred @ rot.transpose(1, 2) +
               trans[:, None])
    return aligned, (s_fit, rot, trans)


def rigid_transform_mano(global_orient: Tensor, transl: Tensor,
                         root_joint: Tensor, rot: Tensor,
                         trans: Tensor) -> Tuple[Tensor, Tensor]:
    """MANO parameters of a hand moved rigidly by ``X' = rot @ X + trans``.

    MANO rotates the whole hand by its global orientation ``Rg`` about the
    root joint ``J0`` of the shaped rest mesh (which depends on the betas) and
    then adds ``transl``: ``X = Rg (X_local - J0) + J0 + transl``. Hence the
    moved hand has ``Rg' = rot @ Rg`` and
    ``transl' = rot @ (J0 + transl) + trans - J0``: the rotation and the
    translation change together, around ``J0``. Used for world -> camera
    conversion of annotations and for in-plane rotation augmentation.

    Args:
        global_orient (Tensor): ``(..., 3)`` axis-angle.
        transl (Tensor): ``(..., 3)``.
        root_joint (Tensor): ``(..., 3)`` J0 of the shaped rest mesh (e.g.
            ``J_regressor[0] @ (v_template + shapedirs @ betas)``).
        rot (Tensor): ``(..., 3, 3)`` proper rotation.
        trans (Tensor): ``(..., 3)``.

    Returns:
        tuple: new ``global_orient`` ``(..., 3)`` and ``transl`` ``(..., 3)``.
    """
    new_orient = matrix_to_axis_angle(
        rot @ axis_angle_to_matrix(global_orient))
    moved_root = (rot @ (root_joint + transl)[..., None])[..., 0] + trans
    return new_orient, moved_root - root_joint
