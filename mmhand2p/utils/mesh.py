# Copyright (c) mmhand2p contributors. All rights reserved.
"""Topology helpers for triangle meshes (numpy, CPU).

Used to check and orient hand models (MANO's mesh has one open boundary loop
at the wrist) and to close that hole before volume computations.
"""
from typing import List, Tuple

import numpy as np

__all__ = [
    'edge_face_counts', 'boundary_loops', 'cap_boundary_loops',
    'signed_volume', 'euler_characteristic'
]


def edge_face_counts(faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Undirected edges and how many faces use each.

    Args:
        faces (np.ndarray): ``(F, 3)`` vertex indices.

    Returns:
        tuple: ``edges`` ``(E, 2)`` sorted pairs and ``counts`` ``(E,)``.
    """
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e.sort(axis=1)
    edges, counts = np.unique(e, axis=0, return_counts=True)
    return edges, counts


def euler_characteristic(faces: np.ndarray, num_vertices: int) -> int:
    """``V - E + F`` of a triangle mesh (1 for a disc, 2 for a sphere)."""
    edges, _ = edge_face_counts(faces)
    return int(num_vertices - len(edges) + len(faces))


def boundary_loops(faces: np.ndarray) -> List[np.ndarray]:
    """Ordered boundary loops, following the faces' winding.

    A boundary half-edge ``a -> b`` is one whose twin ``b -> a`` belongs to no
    face. Each loop is returned in the direction of its half-edges.

    Args:
        faces (np.ndarray): ``(F, 3)`` consistently oriented faces.

    Returns:
        list[np.ndarray]: vertex ids of each loop.

    Raises:
        ValueError: if the boundary is not a set of simple loops (a
            non-manifold vertex on the boundary).
    """
    f = np.asarray(faces, dtype=np.int64)
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    present = set(map(tuple, half.tolist()))
    nxt = {}
    for a, b in half.tolist():
        if (b, a) not in present:
            if a in nxt:
                raise ValueError(f'vertex {a} starts two boundary edges: the '
                                 'boundary is not a set of simple loops')
            nxt[a] = b
    loops = []
    while nxt:
        start = min(nxt)  # a canonical start: the smallest vertex id
        loop = [start]
        cur = nxt.pop(start)
        while cur != start:
            loop.append(cur)
            if cur not in nxt:
                raise ValueError(f'open boundary chain at vertex {cur}')
            cur = nxt.pop(cur)
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def cap_boundary_loops(vertices: np.ndarray,
                       faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Close every boundary loop with a fan to its centroid.

    The new faces follow the orientation of the mesh, so a consistently
    oriented disc becomes a consistently oriented closed surface.

    Args:
        vertices (np.ndarray): ``(..., V, 3)`` (any leading batch dims).
        faces (np.ndarray): ``(F, 3)``.

    Returns:
        tuple: ``(..., V + L, 3)`` vertices and ``(F + sum(len(loop)), 3)``
        faces, where ``L`` is the number of loops.
    """
    v = np.asarray(vertices)
    new_faces = [np.asarray(faces, dtype=np.int64)]
    centres = []
    n = v.shape[-2]
    for i, loop in enumerate(boundary_loops(faces)):
        c = n + i
        centres.append(v[..., loop, :].mean(axis=-2))
        # boundary half-edge a->b: the cap face must contain b->a
        new_faces.append(
            np.stack([np.roll(loop, -1), loop,
                      np.full_like(loop, c)], axis=1))
    if centres:
        v = np.concatenate([v, np.stack(centres, axis=-2)], axis=-2)
    return v, np.concatenate(new_faces)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed volume of closed meshes (positive for outward normals).

    Args:
        vertices (np.ndarray): ``(..., V, 3)``.
        faces (np.ndarray): ``(F, 3)``.

    Returns:
        np.ndarray: ``(...)`` volumes in the cube of the vertices' unit.
    """
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[..., np.asarray(faces, dtype=np.int64), :]  # (..., F, 3, 3)
    return np.einsum('...i,...i->...', tri[..., 0, :],
                     np.cross(tri[..., 1, :], tri[..., 2, :])).sum(-1) / 6.0
