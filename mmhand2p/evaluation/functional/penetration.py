# Copyright (c) mmhand2p contributors. All rights reserved.
"""Penetration between two closed hand meshes.

* **PenVol** - the volume of the intersection of the two solids, computed
  exactly by the mesh-boolean library ``manifold3d`` (PyPI). This module only
  feeds it closed meshes, spreads pairs over worker processes
  (:class:`VolumeWorkerPool`) and refuses meshes that are not closed (a
  ``ValueError`` naming the sample) instead of reporting 0.
* **PenDist** - for every vertex of one hand inside the other hand, its
  distance to the other hand's surface (penetration depth), batched in torch
  (:func:`penetration_depth`):

  - inside test: by default the boolean's own classification, which comes
    for free with PenVol: a vertex of A is inside B exactly when it is a
    vertex of the solid A & B (manifold3d keeps the positions of the input
    vertices it retains). Without PenVol, the generalised winding number
    (:func:`winding_numbers`, torch) decides, tested only within the exact
    bounding-box pruning. Both agree, also on self-intersecting posed hands.
    The sign of the normal of the nearest feature (angle-weighted
    pseudonormal, Baerentzen & Aanaes 2005) was tried and rejected: it is
    exact only for meshes without self-intersections, and posed hands
    (fingers into the palm) often have them - on 200 heavily overlapping
    hand pairs it disagreed with the winding number on 518 vertices;
  - distance: exact point-to-triangle distance (Ericson, *Real-Time
    Collision Detection*, 5.1.5) to the nearest triangle, evaluated only on
    the triangles that can be nearest (a bound from the nearest vertex, see
    :func:`closest_points_on_mesh`). A nearest-vertex approximation would
    be cheaper but is off by up to half an edge (~2 mm on MANO), as large as
    typical penetrations.

No installed library computes batched point-to-mesh distances on CPU
(manifold3d has no signed distance to a mesh), so only that part is written
here. Coordinates are in the caller's unit (metres in mmhand2p); volumes
come back in that unit cubed.
"""
import math
import multiprocessing
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmhand2p.utils.mesh import boundary_loops, cap_boundary_loops

__all__ = [
    'MeshTopology', 'check_closed_mesh', 'cap_holes', 'closed_hand_faces',
    'intersection_volume', 'penetration_volume', 'VolumeWorkerPool',
    'closest_points_on_mesh', 'winding_numbers', 'point_mesh_signed_distance',
    'penetration_depth', 'default_num_workers'
]


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
                'mmhand2p.utils.mesh.cap_boundary_loops (cap_holes=True).')
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

    A thin wrapper of :func:`mmhand2p.utils.mesh.cap_boundary_loops`.

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


# ---------------------------------------------------------------------------
# PenVol: exact intersection volume with manifold3d
# ---------------------------------------------------------------------------
def _import_manifold3d():
    try:
        import manifold3d
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError('PenVol needs the mesh-boolean library manifold3d: '
                          '`pip install manifold3d`') from e
    return manifold3d


def _check_finite(vertices: np.ndarray, name, hand: str) -> np.ndarray:
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ValueError(f'{_sample_desc(name)}: the {hand} mesh has '
                         'non-finite vertices')
    return v


def _to_manifold(vertices: np.ndarray, faces: np.ndarray, name, hand: str):
    m3d = _import_manifold3d()
    mesh = m3d.Mesh64(
        vert_properties=_check_finite(vertices, name, hand),
        tri_verts=np.ascontiguousarray(faces, dtype=np.uint64))
    solid = m3d.Manifold(mesh)
    status = solid.status()
    if status != m3d.Error.NoError:
        raise ValueError(
            f'{_sample_desc(name)}: manifold3d rejected the {hand} mesh '
            f'({status.name}); it must be a closed, consistently oriented '
            '2-manifold (cap open holes such as the wrist first)')
    return solid


class _SolidFactory:
    """manifold3d solids of meshes that share one topology.

    The first mesh is built (and validated) by manifold3d; later ones are
    the same solid with its vertices moved (``Manifold.warp_batch``), which
    skips re-building the half-edge structure: about 1/3 of the cost of a
    pair, for bit-identical volumes (``test_penetration.py`` compares both
    paths). Warping is only used when manifold3d kept every input vertex
    of the first mesh, so that the vertex correspondence is exact.
    """

    def __init__(self, faces: np.ndarray, hand: str) -> None:
        self.faces = np.ascontiguousarray(faces, dtype=np.uint64)
        self.hand = hand
        self.template = None
        self.perm = None  # input index of each internal vertex
        self.warp = True

    def __call__(self, vertices: np.ndarray, name):
        v = _check_finite(vertices, name, self.hand)
        if self.template is None or not self.warp:
            solid = _to_manifold(v, self.faces, name, self.hand)
            if self.template is None and self.warp:
                self._set_template(solid, v)
            return solid
        return self.template.warp_batch(lambda pos: v[self.perm])

    def _set_template(self, solid, v: np.ndarray) -> None:
        seen = []
        solid.warp_batch(lambda pos: seen.append(np.array(pos)) or pos)
        pos = seen[0] if seen else np.zeros((0, 3))
        unique = len(np.unique(v, axis=0)) == len(v)
        if len(pos) != len(v) or not unique:
            self.warp = False
            return
        order_in = np.lexsort(v.T[::-1])
        order_pos = np.lexsort(pos.T[::-1])
        perm = np.empty(len(v), dtype=np.int64)
        perm[order_pos] = order_in
        if not np.array_equal(v[perm], pos):
            self.warp = False
            return
        self.template, self.perm = solid, perm


def _rows_in(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(len(x),)`` bool: which rows of ``x`` occur bit-for-bit in ``y``.

    Sorted search on the first coordinate, then the full rows of the hits.
    """
    found = np.zeros(len(x), dtype=bool)
    if len(x) == 0 or len(y) == 0:
        return found
    order = np.argsort(y[:, 0], kind='stable')
    ys = y[order]
    lo = np.searchsorted(ys[:, 0], x[:, 0], side='left')
    hi = np.searchsorted(ys[:, 0], x[:, 0], side='right')
    one = np.nonzero(hi - lo == 1)[0]
    found[one] = (ys[lo[one]] == x[one]).all(-1)
    for i in np.nonzero(hi - lo > 1)[0]:  # equal first coordinates: rare
        found[i] = bool((ys[lo[i]:hi[i]] == x[i]).all(-1).any())
    return found


def _intersect(a, b, verts_a, verts_b, return_inside: bool):
    inter = a ^ b
    if inter.is_empty():
        out = (0.0, np.full((2, 3), np.nan))
        if return_inside:
            out += (np.zeros(len(verts_a),
                             dtype=bool), np.zeros(len(verts_b), dtype=bool))
        return out
    box = np.asarray(inter.bounding_box(), dtype=np.float64).reshape(2, 3)
    out = (float(inter.volume()), box)
    if return_inside:
        res = inter.to_mesh64().vert_properties[:, :3]
        out += (_rows_in(np.asarray(verts_a, dtype=np.float64), res),
                _rows_in(np.asarray(verts_b, dtype=np.float64), res))
    return out


def intersection_volume(verts_a: np.ndarray,
                        faces_a: np.ndarray,
                        verts_b: np.ndarray,
                        faces_b: np.ndarray,
                        name=None,
                        return_inside: bool = False):
    """Exact volume of the intersection of two closed meshes (manifold3d).

    Args:
        verts_a (np.ndarray): ``(Va, 3)``.
        faces_a (np.ndarray): ``(Fa, 3)``, outward winding.
        verts_b (np.ndarray): ``(Vb, 3)``.
        faces_b (np.ndarray): ``(Fb, 3)``.
        name (optional): the sample, for error messages.
        return_inside (bool): also return which vertices of each mesh lie
            inside the other one.

    Returns:
        tuple: the volume (unit cubed), the ``(2, 3)`` bounding box
        ``[min, max]`` of the intersection solid (``nan`` if empty) and, with
        ``return_inside``, bool masks ``(Va,)`` and ``(Vb,)``: a vertex of A
        is inside B exactly when it is a vertex of the boolean result A & B
        (manifold3d keeps the input positions of the vertices it retains).
        This agrees with the winding-number test, also on self-intersecting
        hands, where a sign-of-normal test does not.

    Raises:
        ValueError: naming the sample, if a mesh is not a closed 2-manifold.
    """
    a = _to_manifold(verts_a, faces_a, name, 'first')
    b = _to_manifold(verts_b, faces_b, name, 'second')
    return _intersect(a, b, verts_a, verts_b, return_inside)


class _PairVolumes:
    """PenVol of many pairs with two fixed topologies (one per process)."""

    def __init__(self, faces_a: np.ndarray, faces_b: np.ndarray) -> None:
        self.solid_a = _SolidFactory(faces_a, 'first')
        self.solid_b = _SolidFactory(faces_b, 'second')

    def __call__(self, verts_a, verts_b, names, return_inside: bool = False):
        n = len(verts_a)
        vols = np.zeros(n)
        boxes = np.full((n, 2, 3), np.nan)
        ins_a = np.zeros(verts_a.shape[:2], dtype=bool)
        ins_b = np.zeros(verts_b.shape[:2], dtype=bool)
        for i in range(n):
            a = self.solid_a(verts_a[i], names[i])
            b = self.solid_b(verts_b[i], names[i])
            out = _intersect(a, b, verts_a[i], verts_b[i], return_inside)
            vols[i], boxes[i] = out[:2]
            if return_inside:
                ins_a[i], ins_b[i] = out[2:]
        return (vols, boxes, ins_a, ins_b) if return_inside else (vols, boxes)


# worker-process state, set once by the pool initializer
_WORKER: Optional[_PairVolumes] = None


def _init_worker(faces_a: np.ndarray, faces_b: np.ndarray,
                 cores: Optional[Sequence[int]]) -> None:
    global _WORKER
    if cores:
        # one core per worker: manifold3d's thread pool (TBB) sizes itself to
        # the cores a process may use, so an unpinned worker starts extra
        # threads that compete with the other workers instead of helping
        ident = multiprocessing.current_process()._identity
        index = ident[0] - 1 if ident else os.getpid()
        try:
            os.sched_setaffinity(0, {cores[index % len(cores)]})
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            pass
    _WORKER = _PairVolumes(faces_a, faces_b)


def _volume_chunk(args):
    verts_a, verts_b, names, return_inside = args
    return _WORKER(verts_a, verts_b, names, return_inside)


def default_num_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _check_pairs(verts_a, verts_b, faces_a, faces_b):
    verts_a = np.asarray(verts_a, dtype=np.float64)
    verts_b = np.asarray(verts_b, dtype=np.float64)
    if (verts_a.ndim != 3 or verts_b.ndim != 3 or verts_a.shape[-1] != 3
            or verts_b.shape[-1] != 3 or len(verts_a) != len(verts_b)):
        raise ValueError('penetration: expected vertices of shape (B, Va, 3) '
                         f'and (B, Vb, 3), got {verts_a.shape} and '
                         f'{verts_b.shape}')
    for v, f, hand in ((verts_a, faces_a, 'first'), (verts_b, faces_b,
                                                     'second')):
        if int(np.max(f)) >= v.shape[1]:
            raise ValueError(f'penetration: the {hand} faces index vertex '
                             f'{int(np.max(f))} but there are only '
                             f'{v.shape[1]} vertices')
    return verts_a, verts_b


class _Done:
    """An already computed result with the ``AsyncResult.get`` interface."""

    def __init__(self, value) -> None:
        self.value = value

    def get(self, timeout=None):
        return self.value


class _Gathered:
    """Concatenates the chunks of a ``Pool.map_async`` result."""

    def __init__(self, async_result, timeout: Optional[float]) -> None:
        self.async_result = async_result
        self.timeout = timeout

    def get(self, timeout=None):
        chunks = self.async_result.get(self.timeout if timeout is
                                       None else timeout)
        return tuple(
            np.concatenate([c[i] for c in chunks])
            for i in range(len(chunks[0])))


class VolumeWorkerPool:
    """Worker processes that compute PenVol for many pairs of meshes with
    the same two topologies.

    The faces are sent once (pool initializer); each task is a chunk of
    pairs of vertex arrays. Batches smaller than ``min_pairs`` are computed
    in the calling process. Use as a context manager or call :meth:`close`.

    Args:
        faces_a (np.ndarray): ``(Fa, 3)`` closed faces of the first mesh.
        faces_b (np.ndarray): ``(Fb, 3)`` of the second mesh.
        num_workers (int, optional): processes; defaults to the usable CPU
            cores. ``0`` or ``1`` computes everything in the calling process.
        start_method (str): ``'fork'`` (default on Linux; the workers need
            no re-import) or ``'spawn'`` / ``'forkserver'``.
        min_pairs (int): smaller batches are computed serially. Default 8.
        chunks_per_worker (int): tasks per worker and batch. Default 4.
        timeout (float, optional): seconds to wait for a batch before
            raising (a stuck worker fails loudly instead of hanging).
            Defaults to 600.
        pin_workers (bool): pin worker ``i`` to the ``i``-th usable core
            when there are at least as many cores as workers. manifold3d
            runs a thread pool sized to the usable cores; pinned, each worker
            computes on one core instead of starting threads that compete
            with the other workers. Defaults to True.
    """

    def __init__(self,
                 faces_a: np.ndarray,
                 faces_b: np.ndarray,
                 num_workers: Optional[int] = None,
                 start_method: str = 'fork',
                 min_pairs: int = 8,
                 chunks_per_worker: int = 4,
                 timeout: Optional[float] = 600.0,
                 pin_workers: bool = True) -> None:
        check_closed_mesh(faces_a, 'first mesh topology')
        check_closed_mesh(faces_b, 'second mesh topology')
        self.faces_a = np.ascontiguousarray(faces_a, dtype=np.int64)
        self.faces_b = np.ascontiguousarray(faces_b, dtype=np.int64)
        self.num_workers = (
            default_num_workers() if num_workers is None else int(num_workers))
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f'start_method {start_method!r} is not available here; valid: '
                f'{multiprocessing.get_all_start_methods()}')
        self.start_method = start_method
        self.min_pairs = min_pairs
        self.chunks_per_worker = chunks_per_worker
        self.timeout = timeout
        self.pin_workers = pin_workers
        self._pool = None
        self._serial: Optional[_PairVolumes] = None

    def _cores(self) -> Optional[List[int]]:
        """The cores to pin the workers to, or None."""
        if not self.pin_workers:
            return None
        try:
            cores = sorted(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            return None
        return cores if len(cores) >= self.num_workers else None

    def _get_pool(self):
        if self._pool is None:
            ctx = multiprocessing.get_context(self.start_method)
            self._pool = ctx.Pool(
                self.num_workers,
                initializer=_init_worker,
                initargs=(self.faces_a, self.faces_b, self._cores()))
        return self._pool

    def submit(self,
               verts_a,
               verts_b,
               names: Optional[Sequence] = None,
               return_inside: bool = False):
        """Start computing PenVol for a batch of pairs.

        Args:
            verts_a: ``(B, Va, 3)``.
            verts_b: ``(B, Vb, 3)``.
            names (sequence, optional): one name per pair for errors.
            return_inside (bool): also classify the vertices (see
                :func:`intersection_volume`).

        Returns:
            An object whose ``get()`` returns ``volumes (B,)``, intersection
            bounding boxes ``(B, 2, 3)`` and, with ``return_inside``,
            ``(B, Va)`` / ``(B, Vb)`` inside masks; a ``ValueError`` naming the
            sample is raised there if a mesh is invalid.
        """
        verts_a, verts_b = _check_pairs(verts_a, verts_b, self.faces_a,
                                        self.faces_b)
        n = len(verts_a)
        names = list(range(n)) if names is None else list(names)
        if self.num_workers <= 1 or n < self.min_pairs:
            if self._serial is None:
                self._serial = _PairVolumes(self.faces_a, self.faces_b)
            return _Done(self._serial(verts_a, verts_b, names, return_inside))
        num_chunks = min(n, self.num_workers * self.chunks_per_worker)
        bounds = np.linspace(0, n, num_chunks + 1).round().astype(int)
        tasks = [(verts_a[s:e], verts_b[s:e], names[s:e], return_inside)
                 for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
        return _Gathered(self._get_pool().map_async(_volume_chunk, tasks),
                         self.timeout)

    def __call__(self, verts_a, verts_b, names=None, return_inside=False):
        """Synchronous :meth:`submit`."""
        return self.submit(verts_a, verts_b, names, return_inside).get()

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> 'VolumeWorkerPool':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __getstate__(self):  # the pool and solids cannot be pickled
        state = self.__dict__.copy()
        state['_pool'] = None
        state['_serial'] = None
        return state


def penetration_volume(verts_a,
                       faces_a: np.ndarray,
                       verts_b,
                       faces_b: np.ndarray,
                       names: Optional[Sequence] = None,
                       num_workers: Optional[int] = 0,
                       pool: Optional[VolumeWorkerPool] = None,
                       return_inside: bool = False) -> Tuple[np.ndarray, ...]:
    """PenVol of a batch of mesh pairs.

    Args:
        verts_a: ``(B, Va, 3)`` closed meshes (cap holes first).
        faces_a (np.ndarray): ``(Fa, 3)`` outward winding.
        verts_b: ``(B, Vb, 3)``.
        faces_b (np.ndarray): ``(Fb, 3)``.
        names (sequence, optional): sample names for error messages.
        num_workers (int, optional): 0 (default) computes in this process;
            None uses every usable core; ignored when ``pool`` is given.
        pool (VolumeWorkerPool, optional): a running pool to reuse.
        return_inside (bool): also return the vertices of each mesh inside
            the other (see :func:`intersection_volume`).

    Returns:
        tuple: volumes ``(B,)`` in the unit of the vertices cubed (m^3 ->
        multiply by 1e6 for cm^3), intersection boxes ``(B, 2, 3)`` and, with
        ``return_inside``, masks ``(B, Va)``, ``(B, Vb)``.

    Raises:
        ValueError: naming the sample, if a mesh is not closed.
    """
    if pool is not None:
        return pool(verts_a, verts_b, names, return_inside)
    for f, hand in ((faces_a, 'first'), (faces_b, 'second')):
        check_closed_mesh(
            f, f'{hand} mesh of sample '
            f'{names[0] if names else 0!r} (topology shared by '
            'the batch)')
    with VolumeWorkerPool(faces_a, faces_b, num_workers=num_workers) as p:
        return p(verts_a, verts_b, names, return_inside)


# ---------------------------------------------------------------------------
# PenDist: depth of the vertices inside the other mesh, batched in torch
# ---------------------------------------------------------------------------
#: (queries x triangles) elements per block of the torch computations
_ELEMENT_BUDGET = 1 << 21


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).sum(-1)


def _closest_on_triangles(p: Tensor, a: Tensor, b: Tensor,
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
    cq = _closest_on_triangles(pts, t[:, 0], t[:, 1], t[:, 2])
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
                    topology: MeshTopology) -> Tensor:
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
        topology (MeshTopology): outward-wound closed faces.

    Returns:
        Tensor: ``(B, P)``.
    """
    faces = topology.tensors(vertices.device)[0]
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


def _inside_by_winding(query: Tensor, query_mask: Tensor, other: Tensor,
                       topo: MeshTopology, boxes: Optional[Tensor]) -> Tensor:
    """``(B, Pq)`` bool: queries strictly inside ``other`` (winding > 0.5),
    tested only within the bounding boxes (an exact pruning)."""
    lo = other.amin(1, keepdim=True)
    hi = other.amax(1, keepdim=True)
    if boxes is not None:
        lo = torch.maximum(lo, boxes[:, 0:1])
        hi = torch.minimum(hi, boxes[:, 1:2])
    cand = ((query >= lo) & (query <= hi)).all(-1) & query_mask
    inside = torch.zeros_like(cand)
    for b in cand.any(-1).nonzero(as_tuple=True)[0].tolist():
        idx = cand[b].nonzero(as_tuple=True)[0]
        w = winding_numbers(query[b:b + 1, idx], other[b:b + 1], topo)[0]
        inside[b, idx] = w > 0.5
    return inside


def _depth_of(query: Tensor, inside: Tensor, other: Tensor,
              topo: MeshTopology) -> Tensor:
    """``(B, Pq)`` distance to ``other``'s surface where ``inside``, else 0.

    The inside queries of each pair are packed to the front; pairs are
    processed in order of their count, in blocks padded to the largest count
    of the block, so that padding costs little.
    """
    bsz, num_q = inside.shape
    depth = query.new_zeros(bsz, num_q)
    counts = inside.sum(-1)
    pairs = (counts > 0).nonzero(as_tuple=True)[0]
    if len(pairs) == 0:
        return depth
    pairs = pairs[torch.argsort(counts[pairs], descending=True)]
    num_v = other.shape[1]
    start = 0
    while start < len(pairs):
        pmax = int(counts[pairs[start]])
        step = max(1, _ELEMENT_BUDGET // (pmax * num_v))
        block = pairs[start:start + step]
        start += step
        # inside queries first; the padding slots hold other vertices
        order = torch.argsort(
            (~inside[block]).to(torch.int8), dim=-1, stable=True)[:, :pmax]
        valid = torch.arange(
            pmax, device=query.device)[None] < counts[block, None]
        pts = query.reshape(-1, 3)[block[:, None] * num_q + order]
        d, _ = closest_points_on_mesh(pts, other[block], topo, valid)
        out = depth[block]
        out.scatter_(1, order, torch.where(valid, d, torch.zeros_like(d)))
        depth[block] = out
    return depth


def penetration_depth(verts_a,
                      verts_b,
                      topology_a: MeshTopology,
                      topology_b: MeshTopology,
                      query_a: Optional[Tensor] = None,
                      query_b: Optional[Tensor] = None,
                      inside_a: Optional[Tensor] = None,
                      inside_b: Optional[Tensor] = None,
                      boxes: Optional[Tensor] = None,
                      dtype: torch.dtype = torch.float32
                      ) -> Tuple[Tensor, Tensor]:
    """PenDist: depth of each vertex of one mesh inside the other.

    Args:
        verts_a: ``(B, Va, 3)`` closed meshes (e.g. capped right hands).
        verts_b: ``(B, Vb, 3)``.
        topology_a (MeshTopology): faces of ``verts_a``.
        topology_b (MeshTopology): faces of ``verts_b``.
        query_a (Tensor, optional): ``(Va,)`` bool, which vertices of A
            count (e.g. the 778 MANO vertices, not the wrist-cap centre).
        query_b (Tensor, optional): ``(Vb,)``.
        inside_a (Tensor, optional): ``(B, Va)`` bool, vertices of A inside
            B as classified by the boolean of :func:`penetration_volume`
            (``return_inside=True``). If None, the inside test is the
            winding number computed here in torch (slower).
        inside_b (Tensor, optional): ``(B, Vb)``.
        boxes (Tensor, optional): ``(B, 2, 3)`` intersection bounding boxes
            (``nan`` if empty), pruning the winding-number test.
        dtype: dtype of the distance computation. Defaults to float32;
            coordinates are re-centred per pair first, so rounding stays
            around 1e-7 of the hands' extent (~1e-5 mm); bounds are kept in
            float64.

    Returns:
        tuple: ``depth_a (B, Va)`` (distance of each vertex of A to B's
        surface where it is inside B, else 0) and ``depth_b (B, Vb)``.
    """
    va = torch.as_tensor(verts_a).to(dtype)
    vb = torch.as_tensor(verts_b).to(dtype).to(va.device)
    if (va.dim() != 3 or vb.dim() != 3 or va.shape[0] != vb.shape[0]
            or va.shape[-1] != 3 or vb.shape[-1] != 3):
        raise ValueError('penetration_depth expects (B, Va, 3) and (B, Vb, 3) '
                         f'vertices, got {tuple(va.shape)} and '
                         f'{tuple(vb.shape)}')
    for v, topo, hand in ((va, topology_a, 'first'), (vb, topology_b,
                                                      'second')):
        if topo.num_vertices > v.shape[1]:
            raise ValueError(f'penetration_depth: the {hand} topology needs '
                             f'{topo.num_vertices} vertices, got {v.shape[1]}')
    centre = 0.5 * (va.mean(1, keepdim=True) + vb.mean(1, keepdim=True))
    va, vb = va - centre, vb - centre
    qa = (
        torch.ones(va.shape[1], dtype=torch.bool, device=va.device)
        if query_a is None else torch.as_tensor(query_a).bool())
    qb = (
        torch.ones(vb.shape[1], dtype=torch.bool, device=va.device)
        if query_b is None else torch.as_tensor(query_b).bool())
    qa, qb = qa[None].expand(va.shape[:2]), qb[None].expand(vb.shape[:2])
    if inside_a is None or inside_b is None:
        if boxes is not None:
            boxes = torch.as_tensor(boxes).to(va) - centre
            empty = torch.isnan(boxes).flatten(1).any(-1)
            # empty intersection: no vertex is inside, an impossible box
            void = torch.tensor([[math.inf] * 3, [-math.inf] * 3],
                                dtype=va.dtype,
                                device=va.device)
            boxes = torch.where(empty[:, None, None], void, boxes)
        if inside_a is None:
            inside_a = _inside_by_winding(va, qa, vb, topology_b, boxes)
        if inside_b is None:
            inside_b = _inside_by_winding(vb, qb, va, topology_a, boxes)
    inside_a = torch.as_tensor(inside_a).bool().to(va.device) & qa
    inside_b = torch.as_tensor(inside_b).bool().to(va.device) & qb
    return (_depth_of(va, inside_a, vb,
                      topology_b), _depth_of(vb, inside_b, va, topology_a))
