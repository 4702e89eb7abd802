# Copyright (c) mmhand2p contributors. All rights reserved.
"""Closest points on triangles and meshes, generalised winding numbers and
signed distances, batched in torch.

* distance: exact point-to-triangle distance (Ericson, *Real-Time Collision
  Detection*, 5.1.5) to the nearest triangle, evaluated only on the
  triangles that can be nearest (a bound from the nearest vertex, see
  :func:`closest_points_on_mesh`);
* inside test: the generalised winding number (:func:`winding_numbers`),
  right also on self-intersecting posed hands.

Shared by the collision losses, the penetration metric (PenDist) and the
visualizer. Coordinates are in the caller's unit (metres in mmhand2p).
"""
import math
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .mesh import MeshTopology

__all__ = [
    'closest_points_on_triangles', 'closest_points_on_mesh',
    'winding_numbers', 'point_mesh_signed_distance'
]

#: (queries x triangles) elements per block of the torch computations
_ELEMENT_BUDGET = 1 << 21


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum(-1)


def closest_points_on_triangles(p: Tensor, a: Tensor, b: Tensor,
                                c: Tensor) -> Tensor:
    """Closest points on triangles (Ericson's Voronoi-region method).

    The regions are tested in his order (vertex a, vertex b, edge ab,
    vertex c, edge ca, edge bc, face interior), which the reverse order of
    the ``torch.where`` overrides below reproduces. Arguments are ``(..., 3)``
    and broadcast; returns ``q (..., 3)``.
    """
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    tiny = torch.finfo(d1.dtype).tiny
    one, zero = torch.ones_like(d1), torch.zeros_like(d1)
    # q = a + s * ab + t * ac, face interior first
    denom = va + vb + vc
    denom = torch.where(denom.abs() > tiny, denom, one)
    s, t = vb / denom, vc / denom

    def put(cond, s_new, t_new):
        nonlocal s, t
        s = torch.where(cond, s_new, s)
        t = torch.where(cond, t_new, t)

    u = (d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp(min=tiny)
    put((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), 1 - u, u)  # bc
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), zero,
        d2 / (d2 - d6).clamp(min=tiny))  # edge ca
    put((d6 >= 0) & (d5 <= d6), zero, one)  # vertex c
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), d1 / (d1 - d3).clamp(min=tiny),
        zero)  # edge ab
    put((d3 >= 0) & (d4 <= d3), one, zero)  # vertex b
    put((d1 <= 0) & (d2 <= 0), zero, zero)  # vertex a
    return a + ab * s[..., None] + ac * t[..., None]


def closest_points_on_mesh(points: Tensor,
                           vertices: Tensor,
                           topology: MeshTopology,
                           valid: Optional[Tensor] = None
                           ) -> Tuple[Tensor, Tensor]:
    """Exact distance from points to triangle meshes, and closest points.

    The nearest vertex gives an upper bound ``u`` of the distance. If the
    closest point ``q`` lies on triangle ``t``, every vertex ``v`` of ``t``
    is within ``|p - q| + |q - v| <= u + L_v`` of ``p``, where ``L_v`` is the
    longest edge at ``v``. So only the faces around the vertices with
    ``|p - v| <= u + L_v`` can hold the closest point; they are evaluated
    exactly (Ericson's closest point on a triangle) as one flat batch of
    (query, face) pairs and the minimum is the exact distance. Near the
    surface this leaves a few dozen of MANO's 1554 capped faces per query.

    Args:
        points (Tensor): ``(B, P, 3)`` queries.
        vertices (Tensor): ``(B, V, 3)`` (topology shared by the batch).
        topology (MeshTopology): the faces.
        valid (Tensor, optional): ``(B, P)`` bool, queries to compute (the
            others get ``inf`` and cost nothing).

    Returns:
        tuple: ``dist (B, P)`` and closest points ``(B, P, 3)``.
    """
    if points.dim() != 3 or vertices.dim() != 3 or len(points) != len(
            vertices):
        raise ValueError('closest_points_on_mesh expects (B, P, 3) points and '
                         f'(B, V, 3) vertices, got {tuple(points.shape)} and '
                         f'{tuple(vertices.shape)}')
    bsz, num_p = points.shape[:2]
    num_v = vertices.shape[1]
    d = points.new_full((bsz, num_p), math.inf)
    q = points.new_zeros(bsz, num_p, 3)
    if num_p == 0 or bsz == 0:
        return d, q
    if valid is None:
        valid = torch.ones(bsz, num_p, dtype=torch.bool, device=points.device)
    step = max(1, _ELEMENT_BUDGET // (num_p * num_v))
    for s in range(0, bsz, step):
        sl = slice(s, s + step)
        d[sl], q[sl] = _closest_block(points[sl], vertices[sl], topology,
                                      valid[sl])
    return d, q


def _closest_block(points: Tensor, vertices: Tensor, topology: MeshTopology,
                   valid: Tensor) -> Tuple[Tensor, Tensor]:
    """:func:`closest_points_on_mesh` for a block that fits in memory."""
    faces, vertex_faces, ptr, edges = topology.tensors(vertices.device)
    bsz, num_p = points.shape[:2]
    num_v = vertices.shape[1]
    d = points.new_full((bsz, num_p), math.inf)
    q = points.new_zeros(bsz, num_p, 3)
    # longest edge at each vertex
    length = (vertices[:, edges[:, 0]] - vertices[:, edges[:, 1]]).norm(dim=-1)
    longest = vertices.new_zeros(bsz, num_v)
    for end in (0, 1):
        longest = longest.scatter_reduce(
            1, edges[:, end].expand(bsz, -1), length, reduce='amax')
    # squared distances by a matrix product (float32 is fine: the margin
    # covers its rounding, sqrt(8 eps) times the coordinates' magnitude,
    # and only admits a few more faces; the distances returned are computed
    # exactly below)
    dist_v = torch.baddbmm(
        (points * points).sum(-1, keepdim=True) +
        (vertices * vertices).sum(-1)[:, None],
        points,
        vertices.transpose(1, 2),
        alpha=-2).clamp_(min=0).sqrt_()  # B, P, V
    scale = max(float(points.abs().amax()), float(vertices.abs().amax()))
    eps = torch.finfo(points.dtype).eps
    margin = 2 * math.sqrt(24 * eps) * scale + 1e-4 * float(longest.amax())
    # invalid queries get an impossible bound, so no vertex is near them
    upper = torch.where(valid,
                        dist_v.amin(-1) + margin,
                        torch.full_like(dist_v[..., 0], -math.inf))
    near = dist_v.sub_(longest[:, None]) <= upper[..., None]
    b, p, v = near.nonzero(as_tuple=True)
    # each face is reached once, through its first corner, and kept if its
    # other two corners are near as well (all three are, for the closest);
    # flat indices are faster than multi-dimensional advanced indexing
    start, count = ptr[v], ptr[v + 1] - ptr[v]
    rep = torch.repeat_interleave(torch.arange(len(v), device=v.device), count)
    first = torch.cumsum(count, 0) - count
    f = vertex_faces[start[rep] + torch.arange(len(rep), device=v.device) -
                     first[rep]]
    bp = (b * num_p + p)[rep]
    corners = faces[f]  # M, 3
    near_flat = near.view(-1)
    keep = (
        near_flat[bp * num_v + corners[:, 1]]
        & near_flat[bp * num_v + corners[:, 2]])
    bp, corners = bp[keep], corners[keep]
    if len(bp) == 0:
        return d, q
    b = bp // num_p
    t = vertices.reshape(-1, 3)[b[:, None] * num_v + corners]  # M, 3, 3
    pts = points.reshape(-1, 3)[bp]
    cq = closest_points_on_triangles(pts, t[:, 0], t[:, 1], t[:, 2])
    cd = (pts - cq).norm(dim=-1)
    dmin = torch.full((bsz * num_p, ),
                      math.inf,
                      dtype=cd.dtype,
                      device=cd.device).scatter_reduce(
                          0, bp, cd, reduce='amin', include_self=True)
    # the closest point: any candidate that attains the minimum
    hit = cd == dmin[bp]
    q.view(-1, 3)[bp[hit]] = cq[hit]
    return dmin.view(bsz, num_p), q


def winding_numbers(points: Tensor, vertices: Tensor,
                    topology: Union[MeshTopology, Tensor, np.ndarray]
                    ) -> Tensor:
    """Generalised winding numbers of points w.r.t. closed meshes.

    ``w(p) = sum over faces of the signed solid angle / (4 pi)`` with the
    solid angle of Van Oosterom & Strackee (1983). For a closed, outward
    mesh ``w`` is 1 inside, 0 outside, and counts overlapping parts of a
    self-intersecting mesh with multiplicity, which keeps the inside test
    ``w > 0.5`` right where a sign-of-normal test fails (posed hands often
    self-intersect).

    Args:
        points (Tensor): ``(B, P, 3)``.
        vertices (Tensor): ``(B, V, 3)``.
        topology (MeshTopology | Tensor | np.ndarray): outward-wound closed
            faces, or the ``(F, 3)`` faces themselves (not checked: for an
            open mesh the result is the generalised winding number, no
            longer an exact 0 / 1).

    Returns:
        Tensor: ``(B, P)``.
    """
    if isinstance(topology, MeshTopology):
        faces = topology.tensors(vertices.device)[0]
    else:
        faces = torch.as_tensor(
            np.asarray(topology) if not torch.is_tensor(topology) else
            topology, dtype=torch.long, device=vertices.device)
    bsz, num_p = points.shape[:2]
    out = points.new_zeros(bsz, num_p)
    tri = vertices[:, faces]  # B, F, 3, 3
    step = max(1, _ELEMENT_BUDGET // faces.shape[0])
    for b in range(bsz):
        for s in range(0, num_p, step):
            p = points[b, s:s + step, None]  # n, 1, 3
            x, y, z = (tri[b, None, :, i] - p for i in range(3))  # n, F, 3
            lx, ly, lz = x.norm(dim=-1), y.norm(dim=-1), z.norm(dim=-1)
            det = _dot(x, torch.cross(y, z, dim=-1))
            den = (
                lx * ly * lz + _dot(x, y) * lz + _dot(y, z) * lx +
                _dot(z, x) * ly)
            out[b, s:s + step] = torch.atan2(det, den).sum(-1) / (2 * math.pi)
    return out


def point_mesh_signed_distance(points: Tensor, vertices: Tensor,
                               topology: MeshTopology) -> Tensor:
    """Signed distance of points to closed meshes: negative inside
    (winding number > 0.5), exact magnitude.

    Args:
        points (Tensor): ``(B, P, 3)``.
        vertices (Tensor): ``(B, V, 3)``.
        topology (MeshTopology): outward-wound closed faces.

    Returns:
        Tensor: ``(B, P)``.
    """
    d, _ = closest_points_on_mesh(points, vertices, topology)
    inside = winding_numbers(points, vertices, topology) > 0.5
    return torch.where(inside, -d, d)
