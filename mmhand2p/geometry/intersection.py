# Copyright (c) mmhand2p contributors. All rights reserved.
"""Exact intersection volume of two closed meshes (the mesh-boolean library
``manifold3d``, PyPI), one pair or a batch in the calling process.

The worker pool that spreads many pairs over processes stays with the metric
(:class:`mmhand2p.evaluation.functional.VolumeWorkerPool`).
"""
from typing import Optional, Sequence

import numpy as np

from .mesh import _sample_desc, check_closed_mesh

__all__ = ['intersection_volume', 'intersection_volumes', 'check_pairs']


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


def check_pairs(verts_a, verts_b, faces_a, faces_b):
    """``(B, Va, 3)`` / ``(B, Vb, 3)`` float64 arrays of a batch of pairs;
    a ``ValueError`` if the shapes do not match each other or the faces."""
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


def intersection_volumes(verts_a,
                         faces_a: np.ndarray,
                         verts_b,
                         faces_b: np.ndarray,
                         names: Optional[Sequence] = None,
                         return_inside: bool = False):
    """Exact intersection volumes of a batch of mesh pairs that share two
    topologies, computed in this process (what
    :func:`mmhand2p.evaluation.functional.penetration_volume` computes with
    ``num_workers=0``).

    Args:
        verts_a: ``(B, Va, 3)`` closed meshes (cap holes first).
        faces_a (np.ndarray): ``(Fa, 3)`` outward winding.
        verts_b: ``(B, Vb, 3)``.
        faces_b (np.ndarray): ``(Fb, 3)``.
        names (sequence, optional): sample names for error messages.
        return_inside (bool): also return the vertices of each mesh inside
            the other (see :func:`intersection_volume`).

    Returns:
        tuple: volumes ``(B,)`` (unit cubed), intersection boxes
        ``(B, 2, 3)`` and, with ``return_inside``, masks ``(B, Va)``,
        ``(B, Vb)``.

    Raises:
        ValueError: naming the sample, if a mesh is not closed.
    """
    for f, hand in ((faces_a, 'first'), (faces_b, 'second')):
        check_closed_mesh(
            f, f'{hand} mesh of sample '
            f'{names[0] if names else 0!r} (topology shared by '
            'the batch)')
    verts_a, verts_b = check_pairs(verts_a, verts_b, faces_a, faces_b)
    names = list(range(len(verts_a))) if names is None else list(names)
    return _PairVolumes(np.ascontiguousarray(faces_a, dtype=np.int64),
                        np.ascontiguousarray(faces_b, dtype=np.int64))(
                            verts_a, verts_b, names, return_inside)
