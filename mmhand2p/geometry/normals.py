# Copyright (c) mmhand2p contributors. All rights reserved.
"""Face and area-weighted vertex normals of triangle meshes.

One public function, :func:`vertex_normals`, for both callers: torch tensors
(the collision losses: batched, differentiable, zero and zero-gradient where
a normal is undefined) and numpy arrays (the CPU renderer's smooth shading,
float64). Each backend keeps the arithmetic its caller always had, so
losses and rendered pictures are unchanged.
"""
from typing import Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ['vertex_normals', 'face_vertex_normals', 'safe_normalize']


def safe_normalize(v: Tensor, eps: float = 1e-20) -> Tuple[Tensor, Tensor]:
    """``v / |v|`` with 0 (and zero gradient) where ``|v|^2 <= eps``.

    Returns:
        tuple: unit vectors ``(..., 3)`` and the validity mask ``(...)``.
    """
    sq = (v * v).sum(-1, keepdim=True)
    ok = sq > eps
    inv = torch.rsqrt(torch.where(ok, sq, torch.ones_like(sq)))
    return torch.where(ok, v * inv, torch.zeros_like(v)), ok[..., 0]


def face_vertex_normals(vertices: Tensor,
                        faces: Tensor) -> Tuple[Tensor, Tensor]:
    """Unit face normals ``(..., F, 3)`` and area-weighted unit vertex
    normals ``(..., V, 3)``, zero where undefined (degenerate faces,
    vertices whose face normals cancel or vanish: ``|n| <= 1e-15``).

    Args:
        vertices (Tensor): ``(..., V, 3)``.
        faces (Tensor): ``(F, 3)``, outward (counter-clockwise) winding.
    """
    faces = faces.long()
    tri = vertices[..., faces, :]  # (..., F, 3, 3)
    fn = torch.cross(
        tri[..., 1, :] - tri[..., 0, :],
        tri[..., 2, :] - tri[..., 0, :],
        dim=-1)
    acc = vertices.new_zeros(vertices.shape).index_add(
        -2, faces.reshape(-1), fn.repeat_interleave(3, dim=-2))
    # only a vanishing (|n| <= 1e-15 m^2) normal is treated as undefined
    return safe_normalize(fn, 1e-30)[0], safe_normalize(acc, 1e-30)[0]


def vertex_normals(vertices: Union[Tensor, np.ndarray],
                   faces: Union[Tensor, np.ndarray]
                   ) -> Union[Tensor, np.ndarray]:
    """Area-weighted outward vertex normals.

    Each face adds its (area-scaled) normal ``(v1 - v0) x (v2 - v0)`` to its
    three vertices; the sums are normalised. A vertex whose sum vanishes
    (coincident vertices, zero-area faces, unused vertices) gets a zero
    normal, never NaN.

    Args:
        vertices (Tensor | np.ndarray): ``(..., V, 3)`` tensor (any batch
            shape, differentiable) or a ``(V, 3)`` array (float64).
        faces (Tensor | np.ndarray): ``(F, 3)`` vertex indices, outward
            (counter-clockwise) winding.

    Returns:
        Tensor | np.ndarray: ``(..., V, 3)`` unit or zero normals, of the
        type of ``vertices``.
    """
    if torch.is_tensor(vertices):
        return face_vertex_normals(vertices, torch.as_tensor(faces))[1]
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.divide(vn, norm, out=np.zeros_like(vn), where=norm > 0)
