# Copyright (c) mmhand2p contributors. All rights reserved.
"""Topology of triangle meshes (numpy, CPU): boundary loops, hole capping,
signed volumes and :class:`MeshTopology` (the connectivity of a closed mesh
that the distance and winding-number functions of
:mod:`mmhand2p.geometry.distance` use).

Used to check and orient hand models (MANO's mesh has one open boundary loop
at the wrist) and to close that hole before volume computations; shared by
the body model, the collision losses, the refiner's gate, the metrics, the
visualizer and the synthetic hand model.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'edge_face_counts', 'boundary_loops', 'cap_boundary_loops',
    'signed_volume', 'euler_characteristic', 'MeshTopology',
    'check_closed_mesh', 'cap_holes', 'closed_hand_faces'
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


def _sample_desc(name) -> str:
    return f'sample {name!r}' if name is not None else 'a mesh'


class MeshTopology:
    """Connectivity of a closed, consistently oriented triangle mesh.

    Args:
        faces (np.ndarray): ``(F, 3)`` vertex indices.
        name (str, optional): what to call the mesh in errors (the sample).

    Raises:
        ValueError: if some edge is not shared by exactly two faces (an open
            hole such as MANO's wrist, or a non-manifold edge), or if two
            faces traverse an edge in the same direction (inconsistent
            winding).

    Attributes:
        faces (np.ndarray): ``(F, 3)`` int64.
        edges (np.ndarray): ``(E, 2)`` sorted vertex pairs.
        vertex_faces (np.ndarray): ``(F,)`` faces sorted by their first
            corner: those of vertex ``v`` are
            ``vertex_faces[vertex_face_ptr[v]:vertex_face_ptr[v + 1]]``.
        vertex_face_ptr (np.ndarray): ``(V + 1,)``.
        num_vertices (int): ``max(faces) + 1``.
    """

    def __init__(self, faces: np.ndarray, name: Optional[str] = None) -> None:
        f = np.asarray(faces, dtype=np.int64)
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise ValueError(f'{_sample_desc(name)}: faces must have shape '
                             f'(F, 3), got {f.shape}')
        half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        und = np.sort(half, axis=1)
        edges, counts = np.unique(und, axis=0, return_counts=True)
        bad = counts != 2
        if bad.any():
            n_open = int((counts == 1).sum())
            n_nonmanifold = int((counts > 2).sum())
            try:
                loops = [len(loop) for loop in boundary_loops(f)]
            except ValueError:
                loops = []
            raise ValueError(
                f'{_sample_desc(name)}: the mesh is not closed: {n_open} '
                f'edges belong to one face only (open boundary loops of '
                f'{loops} vertices) and {n_nonmanifold} edges to more than '
                'two faces. Volumes and inside tests need closed meshes: cap '
                "the holes (e.g. MANO's wrist) with "
                'mmhand2p.geometry.cap_boundary_loops (cap_holes=True).')
        # each undirected edge must be traversed once in each direction
        directed = np.unique(half, axis=0)
        if len(directed) != len(half):
            raise ValueError(
                f'{_sample_desc(name)}: the faces are not consistently '
                'oriented (two faces traverse an edge in the same direction)')
        self.faces = f
        self.edges = edges
        self.num_vertices = int(f.max()) + 1
        # the faces whose first corner is each vertex (CSR):
        # vertex_faces[vertex_face_ptr[v]:vertex_face_ptr[v + 1]]
        order = np.argsort(f[:, 0], kind='stable')
        self.vertex_faces = order
        self.vertex_face_ptr = np.concatenate(
            [[0],
             np.cumsum(np.bincount(f[:, 0], minlength=self.num_vertices))])
        self._torch: Dict[str, Tuple[Tensor, ...]] = {}

    def tensors(self, device: torch.device) -> Tuple[Tensor, ...]:
        """``faces``, ``vertex_faces``, ``vertex_face_ptr``, ``edges`` as
        long tensors on ``device``."""
        key = str(device)
        if key not in self._torch:
            self._torch[key] = tuple(
                torch.as_tensor(a, dtype=torch.long, device=device)
                for a in (self.faces, self.vertex_faces, self.vertex_face_ptr,
                          self.edges))
        return self._torch[key]


def check_closed_mesh(faces: np.ndarray, name: Optional[str] = None) -> None:
    """Raise a ``ValueError`` naming ``name`` unless the mesh is closed and
    consistently oriented (every edge in exactly two faces, once each way)."""
    MeshTopology(faces, name)


def cap_holes(vertices: np.ndarray,
              faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Close every boundary loop (MANO's wrist) with a fan to its centroid.

    A thin wrapper of :func:`cap_boundary_loops`.

    Args:
        vertices (np.ndarray): ``(..., V, 3)``.
        faces (np.ndarray): ``(F, 3)``.

    Returns:
        tuple: ``(..., V + L, 3)`` vertices, ``(F + sum(loop sizes), 3)``
        faces.
    """
    return cap_boundary_loops(vertices, faces)


def closed_hand_faces(faces: np.ndarray
                      ) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Capped faces of a hand topology and the loops whose centroids become
    the new vertices ``V, V + 1, ...`` (so vertices can be capped in torch
    without recomputing the topology).

    Args:
        faces (np.ndarray): ``(F, 3)`` e.g. MANO's 1538 faces.

    Returns:
        tuple: capped ``(F', 3)`` faces and the list of boundary loops.
    """
    faces = np.asarray(faces, dtype=np.int64)
    loops = boundary_loops(faces)
    nv = int(faces.max()) + 1
    _, capped = cap_boundary_loops(np.zeros((nv, 3)), faces)
    return capped, loops
