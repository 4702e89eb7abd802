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
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

# the geometry is shared (losses, refiner gate, visualizer): it lives in
# mmhand2p.geometry and is re-exported here under its old names
from mmhand2p.geometry.distance import (_ELEMENT_BUDGET,
                                        closest_points_on_mesh,
                                        point_mesh_signed_distance,
                                        winding_numbers)
from mmhand2p.geometry.intersection import _PairVolumes
from mmhand2p.geometry.intersection import check_pairs as _check_pairs
from mmhand2p.geometry.intersection import intersection_volume
from mmhand2p.geometry.mesh import (MeshTopology, cap_holes, check_closed_mesh,
                                    closed_hand_faces)

__all__ = [
    'MeshTopology', 'check_closed_mesh', 'cap_holes', 'closed_hand_faces',
    'intersection_volume', 'penetration_volume', 'VolumeWorkerPool',
    'closest_points_on_mesh', 'winding_numbers', 'point_mesh_signed_distance',
    'penetration_depth', 'default_num_workers'
]


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
