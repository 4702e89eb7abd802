# Copyright (c) mmhand2p contributors. All rights reserved.
"""Differentiable two-hand collision losses (A2P stage 2 guidance).

Two criteria on the vertices of the two hands (``A`` = right, ``B`` = left,
camera frame, metres), batched over the whole batch:

* :func:`hybrid_collision` - A2P's hybrid distance / normal criterion
  (arXiv 2503.17788, Sec. 3.2): vertex pairs of the two hands closer than
  ``d_threshold`` whose outward normals oppose (``n_a . n_b <
  cos(angle_threshold)``) are the contact region; their penetration depth
  is penalised with the Geman-McClure robust function (GMoF).
* :func:`inside_collision` - the inside test of InterHandGen (Lee et al.,
  CVPR 2024) and hand-object works: every vertex lying below the other
  hand's surface around its nearest vertex there is inside; its depth is
  penalised with GMoF. It also sees deep and nested penetrations (aligned
  normals), which the hybrid criterion ignores by design.

Pairs. Every vertex of either hand is paired with its nearest vertex of the
other hand (not with every vertex closer than the threshold: on curved
surfaces a vertex far along the surface can lie behind another vertex's
tangent plane without penetrating; two touching spheres of radius ``r``
would give false depths of ``|a - b|^2 / 4r``).

Depth of a pair (both criteria): the signed distance of the query vertex
``x`` below the other surface near its nearest vertex, ``-(x - q) . n_f``
with ``q`` the closest point of that vertex's one-ring (Ericson's closest
point on a triangle) and ``n_f`` the normal of the face holding ``q``;
``relu`` of it is penalised. Touching hands give exactly 0 (the tangent
plane of the nearest vertex alone gave up to 0.6 mm on touching MANO hands),
and a gradient step moves the penetrating vertices out along the surface
normal. The paper (Sec. 3.2) states the selection (distance and normal
thresholds), calls its loss "a robust collision loss using the GMoF
function" and prints Eq. (3), ``L = sum_i sum_j |V^i - V_c^j|^2 /
(|V^i - V_c^j|^2 - rho)``, a function of the pair distance, not of a
penetration depth. Penalising the depth with GMoF (``criterion=
'depth_gmof'``, the default of :func:`hybrid_collision`) is this
implementation's choice: it separates penetrating hands where Eq. (3) as
printed and a GMoF of the pair distance do not (``docs/diffusion_refiner.md``
has the measurement). Both are available as ``criterion='eq3_printed'`` and
``'pair_gmof'`` (see :func:`pair_penalty`).

Cost. An exact pre-filter keeps, per sample, only the vertices of one hand
inside the other hand's bounding box grown by the search radius, then only
those with a vertex of the other hand in a neighbouring cell of a grid of
that size; a sample whose boxes do not overlap costs two min/max
reductions (``docs/diffusion_refiner.md`` has the timings). The surviving
vertices are packed into one padded batch, nearest neighbours of both
directions come from one distance matrix (no gradient), and only the
selected pairs are gathered again, with gradient: there is no Python loop
over samples. Degenerate geometry (coincident vertices, zero-area faces)
gets zero-length normals and forms no pairs, so losses and gradients stay
finite; the loss stays connected to the input, so ``backward()`` works (with
zero gradients) when nothing collides.
"""
import math
from typing import NamedTuple, Tuple

import torch
from torch import Tensor, nn

from mmhand2p.geometry import closest_points_on_triangles, vertex_normals
from mmhand2p.geometry.normals import face_vertex_normals as _normals
from mmhand2p.registry import MODELS

__all__ = [
    'CollisionResult', 'gmof', 'eq3_printed', 'pair_penalty',
    'CRITERIA', 'vertex_normals', 'box_prefilter',
    'grid_prefilter', 'hybrid_collision', 'inside_collision',
    'HybridCollisionLoss', 'InsideCollisionLoss'
]

#: (query x target) elements per block of the nearest-neighbour search
_ELEMENT_BUDGET = 1 << 22
#: cells of the dense pre-filter grid (batch included) before it falls back
#: to hashed cells
_GRID_BUDGET = 1 << 22
#: pairs whose query lies more than this (metres) in front of the tangent
#: plane of its nearest vertex are outside; the exact one-ring depth is
#: computed for the others only
_VERTEX_PLANE_TOL = 0.005
#: penalties of the hybrid criterion: of the penetration depth (the
#: default) or of the squared pair distance (see :func:`pair_penalty`)
CRITERIA = ('depth_gmof', 'eq3_printed', 'pair_gmof')
#: Eq. (3)'s denominator ``d^2 - rho`` is kept at least ``EQ3_POLE_EPS *
#: rho`` away from 0 (see :func:`eq3_printed`)
EQ3_POLE_EPS = 0.1


class CollisionResult(NamedTuple):
    """Per-sample output of the collision criteria.

    Attributes:
        loss (Tensor): ``(B,)`` sum over the sample's pairs of
            ``GMoF(depth)`` (metres squared for small depths), differentiable
            w.r.t. the vertices.
        num_pairs (Tensor): ``(B,)`` long, pairs with a positive depth (the
            penetration check of the refiner's gating).
        max_depth (Tensor): ``(B,)`` the largest pair depth (metres, no
            gradient), 0 without pairs.
        active (Tensor): ``(B,)`` bool, samples that passed the pre-filter
            (the others cost nothing beyond their bounding boxes).
    """
    loss: Tensor
    num_pairs: Tensor
    max_depth: Tensor
    active: Tensor


def gmof(x: Tensor, rho: float) -> Tensor:
    """Geman-McClure robust penalty ``rho^2 x^2 / (rho^2 + x^2)``.

    Quadratic (``~x^2``) for ``|x| << rho``, bounded by ``rho^2`` for large
    ``|x|`` (SMPLify's ``GMoF``).

    Args:
        x (Tensor): residuals of any shape.
        rho (float): scale, in the unit of ``x``.

    Returns:
        Tensor: same shape as ``x``.
    """
    x2 = x * x
    r2 = rho * rho
    return r2 * x2 / (r2 + x2)


def eq3_printed(d2: Tensor, rho: float, eps: float = EQ3_POLE_EPS) -> Tensor:
    """A2P's Eq. (3) as printed, per pair: ``d^2 / (d^2 - rho)``.

    The printed form has a pole at ``d^2 = rho``. The denominator is kept
    away from it: ``D = d^2 - rho`` is replaced by ``max(D, eps * rho)``
    where ``D > 0`` and by ``min(D, -eps * rho)`` where ``D <= 0`` (the side
    of the pole the pair is on keeps its sign; ``D = 0`` counts as the near
    side). Within ``eps * rho`` of the pole the value is therefore ``d^2 /
    (+-eps rho)`` (at most ``(1 + eps) / eps`` in magnitude) and its
    gradient is ``2 (x - y) / (+-eps rho)``: finite everywhere for
    ``rho > 0``, equal to the printed form elsewhere. Both branches
    decrease with ``d^2``, so minimising pushes the two vertices of a pair
    apart along the line joining them, whichever side of it is inside.

    Args:
        d2 (Tensor): squared pair distances (m^2), any shape.
        rho (float): the printed ``rho``, compared with ``d^2`` (m^2, > 0).
            The paper gives no value.
        eps (float): the pole margin, relative to ``rho``. Defaults to
            ``EQ3_POLE_EPS``.

    Returns:
        Tensor: same shape as ``d2``.
    """
    if not rho > 0 or not eps > 0:
        raise ValueError(f'eq3_printed: rho and eps must be > 0, got {rho} '
                         f'and {eps}')
    den = d2 - rho
    m = eps * rho
    den = torch.where(den > 0, den.clamp(min=m), den.clamp(max=-m))
    return d2 / den


def pair_penalty(x: Tensor, y: Tensor, criterion: str,
                 rho: float) -> Tensor:
    """Penalty of selected pairs ``(x, y)`` from their squared distance.

    * ``'eq3_printed'``: :func:`eq3_printed` of ``d^2 = |x - y|^2`` (Eq. (3)
      of the paper as printed; ``rho`` in m^2).
    * ``'pair_gmof'``: the standard GMoF of the pair distance, ``rho^2 d^2
      / (rho^2 + d^2)`` (``rho`` in metres), computed from ``d^2`` (no
      square root, so finite at ``d = 0``). Minimising it pulls the pair
      together.

    Args:
        x (Tensor): ``(M, 3)``.
        y (Tensor): ``(M, 3)``.
        criterion (str): ``'eq3_printed'`` or ``'pair_gmof'``.
        rho (float): see above.

    Returns:
        Tensor: ``(M,)``.
    """
    d2 = ((x - y)**2).sum(-1)
    if criterion == 'eq3_printed':
        return eq3_printed(d2, rho)
    if criterion == 'pair_gmof':
        r2 = rho * rho
        return r2 * d2 / (r2 + d2)
    raise ValueError("pair_penalty: criterion must be 'eq3_printed' or "
                     f"'pair_gmof', got {criterion!r}")


def box_prefilter(verts_a: Tensor, verts_b: Tensor,
                  margin: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Vertices of each hand inside the other hand's bounding box grown by
    ``margin`` (an exact pre-filter for any search radius <= ``margin``).

    Args:
        verts_a (Tensor): ``(B, Va, 3)``.
        verts_b (Tensor): ``(B, Vb, 3)``.
        margin (float): metres.

    Returns:
        tuple: ``cand_a (B, Va)``, ``cand_b (B, Vb)`` bool and ``active
        (B,)`` bool (both hands have candidates).
    """
    with torch.no_grad():
        lo_a, hi_a = verts_a.amin(
            1, keepdim=True), verts_a.amax(
                1, keepdim=True)
        lo_b, hi_b = verts_b.amin(
            1, keepdim=True), verts_b.amax(
                1, keepdim=True)
        cand_a = ((verts_a >= lo_b - margin) &
                  (verts_a <= hi_b + margin)).all(-1)
        cand_b = ((verts_b >= lo_a - margin) &
                  (verts_b <= hi_a + margin)).all(-1)
        active = cand_a.any(1) & cand_b.any(1)
    return cand_a, cand_b, active


def grid_prefilter(verts_a: Tensor, verts_b: Tensor, radius: float,
                   mask_a: Tensor, mask_b: Tensor) -> Tuple[Tensor, Tensor]:
    """Vertices with a vertex of the other hand in their own or an adjacent
    cell of a grid of cell size ``radius`` (exact: a pair closer than
    ``radius`` is always kept).

    The grid spans the masked vertices of each sample. Each hand's occupied
    cells are marked in a dense boolean ``(B, X, Y, Z)`` grid, dilated by
    one cell along each axis and looked up at the other hand's vertices,
    for the whole batch at once; grids above ``_GRID_BUDGET`` cells fall
    back to hashed cells looked up with ``searchsorted``.

    Args:
        verts_a (Tensor): ``(B, Va, 3)``.
        verts_b (Tensor): ``(B, Vb, 3)``.
        radius (float): metres (> 0).
        mask_a (Tensor): ``(B, Va)`` bool, vertices of A to consider (e.g.
            the box pre-filter's).
        mask_b (Tensor): ``(B, Vb)`` bool.

    Returns:
        tuple: ``near_a (B, Va)``, ``near_b (B, Vb)`` bool, subsets of the
        masks.
    """
    with torch.no_grad():
        bsz = verts_a.shape[0]
        valid = mask_a.any(1) & mask_b.any(1)
        if not bool(valid.any()):
            return torch.zeros_like(mask_a), torch.zeros_like(mask_b)
        inf = torch.full_like(verts_a[:1, :1], math.inf)
        lo = torch.minimum(
            torch.where(mask_a[..., None], verts_a, inf).amin(1),
            torch.where(mask_b[..., None], verts_b, inf).amin(1))
        hi = torch.maximum(
            torch.where(mask_a[..., None], verts_a, -inf).amax(1),
            torch.where(mask_b[..., None], verts_b, -inf).amax(1))
        lo = torch.where(valid[:, None], lo, torch.zeros_like(lo))
        hi = torch.where(valid[:, None], hi, torch.zeros_like(hi))
        dims = (torch.floor((hi - lo) / radius).long() + 3).amax(0)
        lo = lo[:, None]
        ca = torch.floor((verts_a - lo) / radius).long() + 1
        cb = torch.floor((verts_b - lo) / radius).long() + 1
        # unmasked vertices may lie outside the grid: clamp, masked below
        ca = torch.minimum(ca.clamp(min=0), dims - 1)
        cb = torch.minimum(cb.clamp(min=0), dims - 1)
        nx, ny, nz = (int(d) for d in dims)
        if bsz * nx * ny * nz <= _GRID_BUDGET:
            batch = torch.arange(bsz, device=ca.device)[:, None]

            def flat(c):
                return ((batch * nx + c[..., 0]) * ny + c[..., 1]) * nz + \
                    c[..., 2]

            def near(cq, mq, ct, mt):
                occ = torch.zeros(
                    bsz * nx * ny * nz, dtype=torch.bool, device=ca.device)
                occ[flat(ct)[mt]] = True
                occ = occ.view(bsz, nx, ny, nz)
                for dim, size in ((1, nx), (2, ny), (3, nz)):  # dilate
                    if size > 1:
                        grown = occ.clone()
                        grown.narrow(dim, 1, size - 1).logical_or_(
                            occ.narrow(dim, 0, size - 1))
                        grown.narrow(dim, 0, size - 1).logical_or_(
                            occ.narrow(dim, 1, size - 1))
                        occ = grown
                return occ.reshape(-1)[flat(cq)] & mq

            return near(ca, mask_a, cb, mask_b), near(cb, mask_b, ca, mask_a)

        n = max(nx, ny, nz)
        offs = torch.arange(bsz, device=ca.device) * n**3

        def keys(c):
            o = offs.view(-1, *([1] * (c.dim() - 2)))
            return o + (c[..., 0] * n + c[..., 1]) * n + c[..., 2]

        shifts = torch.stack(
            torch.meshgrid(
                *[torch.arange(-1, 2, device=ca.device)] * 3, indexing='ij'),
            -1).reshape(27, 3)

        def near_sorted(cq, mq, kt, mt):
            table = torch.sort(kt[mt]).values
            if len(table) == 0:
                return torch.zeros_like(mq)
            nk = keys(cq[:, :, None] + shifts)  # B, V, 27
            pos = torch.searchsorted(table, nk).clamp(max=len(table) - 1)
            return (table[pos] == nk).any(-1) & mq

        return (near_sorted(ca, mask_a, keys(cb),
                            mask_b), near_sorted(cb, mask_b, keys(ca), mask_a))


def _pack(mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Indices of the ``True`` entries of each row, first, padded.

    Args:
        mask (Tensor): ``(B, V)`` bool with at least one row.

    Returns:
        tuple: ``idx (B, P)`` long (padding slots hold other indices) and
        ``valid (B, P)`` bool, ``P = max row count`` (at least 1).
    """
    counts = mask.sum(1)
    p = max(int(counts.max()), 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :p]
    valid = torch.arange(p, device=mask.device)[None] < counts[:, None]
    return order, valid


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """``x (B, V, ...)`` gathered with ``idx (B, P)`` along dim 1."""
    b = torch.arange(x.shape[0], device=x.device)[:, None]
    return x[b, idx]


class _Pairs(NamedTuple):
    """Nearest-neighbour pairs ``(batch, query vertex, target vertex)`` of
    one direction."""
    b: Tensor
    i: Tensor
    j: Tensor


def _nearest_pairs_both(ca: Tensor, cb: Tensor, tgt_a: Tensor, tgt_b: Tensor,
                        qry_a: Tensor, qry_b: Tensor,
                        max_d2: float) -> Tuple[_Pairs, _Pairs]:
    """Nearest neighbours both ways from one distance matrix, no gradient.

    Each query vertex of A (``qry_a``) is paired with its nearest target
    vertex of B (``tgt_b``) and each query of B with its nearest target of
    A, where closer than ``sqrt(max_d2)``. Queries must be targets too
    (``qry_a <= tgt_a``): the matrix is ``targets of A x targets of B``,
    packed and padded per sample; row minima give A -> B, column minima
    B -> A.

    Args:
        ca (Tensor): ``(B, Va, 3)`` re-centred, detached vertices of A.
        cb (Tensor): ``(B, Vb, 3)``.
        tgt_a, qry_a (Tensor): ``(B, Va)`` bool.
        tgt_b, qry_b (Tensor): ``(B, Vb)`` bool.
        max_d2 (float): squared distance bound.

    Returns:
        tuple: the A -> B and B -> A pairs (``i`` indexes the query hand,
        ``j`` the target hand).
    """
    ia, va = _pack(tgt_a)
    ib, vb = _pack(tgt_b)
    pa, pb = _gather(ca, ia), _gather(cb, ib)
    qa = _gather(qry_a, ia) & va
    qb = _gather(qry_b, ib) & vb
    na = (pa * pa).sum(-1)
    nb = (pb * pb).sum(-1)
    inf = torch.full_like(na[:1, :1], math.inf)
    na_t = torch.where(va, na, inf)  # as targets: padding never wins
    nb_t = torch.where(vb, nb, inf)
    bsz, p, q = pa.shape[0], pa.shape[1], pb.shape[1]
    row_d, row_j = na.new_empty(bsz, p), ia.new_empty(bsz, p)
    col_d, col_i = nb.new_empty(bsz, q), ib.new_empty(bsz, q)
    step = max(1, _ELEMENT_BUDGET // max(p * q, 1))
    with torch.no_grad():
        for s in range(0, bsz, step):  # blocks of samples, memory-bound
            sl = slice(s, s + step)
            g = -2 * pa[sl] @ pb[sl].transpose(1, 2)  # B, P, Q
            row_d[sl], row_j[sl] = (g + nb_t[sl, None]).min(2)
            col_d[sl], col_i[sl] = (g + na_t[sl, :, None]).min(1)
        row_d = (row_d + na).clamp(min=0)
        col_d = (col_d + nb).clamp(min=0)
    b, k = (qa & (row_d < max_d2)).nonzero(as_tuple=True)
    ab = _Pairs(b, ia[b, k], ib[b, row_j[b, k]])
    b, k = (qb & (col_d < max_d2)).nonzero(as_tuple=True)
    ba = _Pairs(b, ib[b, k], ia[b, col_i[b, k]])
    return ab, ba


_RING_CACHE = {}


def _vertex_face_rings(faces: Tensor, num_vertices: int) -> Tensor:
    """``(V, K)`` the faces around each vertex (its one-ring), padded by
    repeating the first one (K = the largest valence); cached per topology.
    """
    key = (faces.device, tuple(faces.shape), num_vertices,
           hash(faces.cpu().numpy().tobytes()))
    ring = _RING_CACHE.get(key)
    if ring is None:
        nf = faces.shape[0]
        vert = faces.reshape(-1)
        face = torch.arange(nf, device=faces.device).repeat_interleave(3)
        order = torch.argsort(vert, stable=True)
        vert, face = vert[order], face[order]
        counts = torch.bincount(vert, minlength=num_vertices)
        k = max(int(counts.max()), 1)
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(vert), device=faces.device) - start[vert]
        ring = torch.full((num_vertices, k),
                          -1,
                          dtype=torch.long,
                          device=faces.device)
        ring[vert, slot] = face
        first = torch.where(ring[:, :1] >= 0, ring[:, :1],
                            torch.zeros_like(ring[:, :1]))
        ring = torch.where(ring >= 0, ring, first)
        if len(_RING_CACHE) > 16:
            _RING_CACHE.clear()
        _RING_CACHE[key] = ring
    return ring


def _surface_depth(x: Tensor, target: Tensor, b: Tensor, j: Tensor,
                   faces: Tensor, ring: Tensor,
                   face_normals: Tensor) -> Tensor:
    """Signed depth of query points below the target surface near their
    nearest target vertex: ``-(x - q) . n_f`` with ``q`` the closest point
    of the vertex's one-ring and ``n_f`` the normal of its face (positive =
    inside).

    Args:
        x (Tensor): ``(M, 3)`` query points.
        target (Tensor): ``(B, V, 3)`` target hand vertices.
        b (Tensor): ``(M,)`` sample of each query.
        j (Tensor): ``(M,)`` its nearest target vertex.
        faces (Tensor): ``(F, 3)`` target faces.
        ring (Tensor): ``(V, K)`` from :func:`_vertex_face_rings`.
        face_normals (Tensor): ``(B, F, 3)``.

    Returns:
        Tensor: ``(M,)``.
    """
    fids = ring[j]  # M, K
    tri = target[b[:, None, None], faces[fids]]  # M, K, 3, 3
    q = closest_points_on_triangles(x[:, None], tri[:, :, 0], tri[:, :, 1],
                                    tri[:, :, 2])  # M, K, 3
    k = ((x[:, None] - q)**2).sum(-1).detach().argmin(-1)
    ar = torch.arange(len(x), device=x.device)
    n = face_normals[b, fids[ar, k]]
    return -((x - q[ar, k]) * n).sum(-1)


def _collision(verts_a: Tensor, verts_b: Tensor, faces_a: Tensor,
               faces_b: Tensor, radius: float, query_margin: float, rho: float,
               detach_normals: bool, keep_fn,
               criterion: str = 'depth_gmof') -> CollisionResult:
    """Shared driver: pre-filter, nearest pairs both ways, depth, GMoF.

    ``keep_fn(n_query, n_target) -> (M,) bool`` says which pairs count
    (from the two vertex normals); ``radius`` bounds the pair distance and
    ``query_margin`` grows the other hand's box for the queries. With a
    ``criterion`` other than ``'depth_gmof'`` the loss is
    :func:`pair_penalty` of every kept pair instead of GMoF of the depths
    (``num_pairs`` and ``max_depth`` are the same either way).
    """
    if verts_a.dim() != 3 or verts_b.dim() != 3 or verts_a.shape[0] != \
            verts_b.shape[0] or verts_a.shape[-1] != 3 or \
            verts_b.shape[-1] != 3:
        raise ValueError('collision: expected vertices (B, Va, 3) and '
                         f'(B, Vb, 3), got {tuple(verts_a.shape)} and '
                         f'{tuple(verts_b.shape)}')
    bsz = verts_a.shape[0]
    device = verts_a.device
    # zero, but connected to the inputs: backward() works when nothing
    # collides (and gives zero gradients)
    loss = 0 * (verts_a.sum((1, 2)) + verts_b.sum((1, 2)))
    num_pairs = torch.zeros(bsz, dtype=torch.long, device=device)
    max_depth = verts_a.new_zeros(bsz)
    # queries: inside the other hand's box grown by query_margin; targets:
    # within radius of a query, hence inside the query hand's box + radius;
    # then the grid keeps the vertices with the other hand in a
    # neighbouring cell
    qry_a, qry_b, _ = box_prefilter(verts_a, verts_b, query_margin)
    tgt_a, tgt_b, _ = box_prefilter(verts_a, verts_b, radius)
    active = tgt_a.any(1) & tgt_b.any(1)
    sel = active.nonzero(as_tuple=True)[0]
    if len(sel) == 0:
        return CollisionResult(loss, num_pairs, max_depth, active)
    faces_a = faces_a.long().to(device)
    faces_b = faces_b.long().to(device)
    va, vb = verts_a[sel], verts_b[sel]
    with torch.no_grad():
        centre = 0.5 * (va.mean(1, keepdim=True) + vb.mean(1, keepdim=True))
        ca, cb = va.detach() - centre, vb.detach() - centre
        tgt_a, tgt_b = grid_prefilter(ca, cb, radius, tgt_a[sel], tgt_b[sel])
        qry_a, qry_b = qry_a[sel] & tgt_a, qry_b[sel] & tgt_b
    sub = len(sel)
    per = va.new_zeros(sub)
    cnt = torch.zeros(sub, dtype=torch.long, device=device)
    dmax = va.new_zeros(sub)
    if not (qry_a.any() or qry_b.any()):
        active = active.index_put((sel, ), qry_a.any(1) | qry_b.any(1))
        return CollisionResult(loss, num_pairs, max_depth, active)
    ab, ba = _nearest_pairs_both(ca, cb, tgt_a, tgt_b, qry_a, qry_b,
                                 radius * radius)
    fn_a, vn_a = _normals(va, faces_a)
    fn_b, vn_b = _normals(vb, faces_b)
    if detach_normals:
        fn_a, vn_a, fn_b, vn_b = (t.detach() for t in (fn_a, vn_a, fn_b, vn_b))
    ring_a = _vertex_face_rings(faces_a, va.shape[1])
    ring_b = _vertex_face_rings(faces_b, vb.shape[1])
    # the two directions: vertices of A against B's surface, and back
    for (b, i,
         j), vq, vt, vn_q, vn_t, fn_t, faces_t, ring_t in ((ab, va, vb, vn_a,
                                                            vn_b, fn_b,
                                                            faces_b, ring_b),
                                                           (ba, vb, va, vn_b,
                                                            vn_a, fn_a,
                                                            faces_a, ring_a)):
        if len(b) == 0:
            continue
        # cheap first test against the nearest vertex's tangent plane; the
        # exact one-ring depth only for pairs that may be inside
        with torch.no_grad():
            x, n_t = vq[b, i], vn_t[b, j]
            kept = keep_fn(vn_q[b, i], n_t)
            keep = kept & ((
                (vt[b, j] - x) * n_t).sum(-1) > -_VERTEX_PLANE_TOL)
            pb, pi, pj = b[kept], i[kept], j[kept]
            b, i, j = b[keep], i[keep], j[keep]
        if criterion != 'depth_gmof' and len(pb):
            per = per.index_add(
                0, pb, pair_penalty(vq[pb, pi], vt[pb, pj], criterion, rho))
        if len(b) == 0:
            continue
        depth = _surface_depth(vq[b, i], vt, b, j, faces_t, ring_t,
                               fn_t).clamp(min=0)
        if criterion == 'depth_gmof':
            per = per.index_add(0, b, gmof(depth, rho))
        cnt = cnt.index_add(0, b, (depth > 0).long())
        dmax = dmax.scatter_reduce(
            0, b, depth.detach(), reduce='amax', include_self=True)
    active = active.index_put((sel, ), qry_a.any(1) | qry_b.any(1))
    loss = loss.index_put((sel, ), per)
    num_pairs = num_pairs.index_put((sel, ), cnt)
    max_depth = max_depth.index_put((sel, ), dmax.detach())
    return CollisionResult(loss, num_pairs, max_depth, active)


def hybrid_collision(verts_a: Tensor,
                     verts_b: Tensor,
                     faces_a: Tensor,
                     faces_b: Tensor,
                     d_threshold: float = 0.005,
                     angle_threshold: float = 90.0,
                     rho: float = 0.01,
                     detach_normals: bool = True,
                     criterion: str = 'depth_gmof') -> CollisionResult:
    """A2P's hybrid distance / normal collision criterion with GMoF.

    Pairs: every vertex of either hand with its nearest vertex of the other
    hand, kept when ``|a - b|^2 < d_threshold^2`` and the outward vertex
    normals oppose, ``n_a . n_b < cos(angle_threshold)``. The depth of the
    query vertex below the other surface (see the module docstring) is
    penalised: ``sum GMoF(relu(depth); rho)`` per sample (the default
    ``criterion``; the others penalise the kept pairs' distances, see
    :func:`pair_penalty`).

    Args:
        verts_a (Tensor): ``(B, Va, 3)`` e.g. right hands, metres.
        verts_b (Tensor): ``(B, Vb, 3)`` e.g. left hands.
        faces_a (Tensor): ``(Fa, 3)`` outward winding.
        faces_b (Tensor): ``(Fb, 3)``.
        d_threshold (float): pair distance bound (metres), also the
            pre-filter margin. Vertices deeper than this are seen only
            through the rim of the penetration. Defaults to 5 mm.
        angle_threshold (float): degrees; pairs whose normals make a larger
            angle count. Defaults to 90.
        rho (float): GMoF scale (metres). Defaults to 1 cm. With
            ``criterion='eq3_printed'`` it is Eq. (3)'s ``rho``, compared
            with squared distances (m^2): set it explicitly.
        detach_normals (bool): no gradient through the normals (the
            default: their gradient would turn the surfaces so as to shrink
            the projection rather than separate them).
        criterion (str): ``'depth_gmof'`` (default: GMoF of the penetration
            depth), ``'eq3_printed'`` (Eq. (3) of the paper as printed, on
            the squared pair distance, pole handled by
            :func:`eq3_printed`) or ``'pair_gmof'`` (GMoF of the pair
            distance). The pair selection is the same for all three.

    Returns:
        CollisionResult: per-sample loss, penetrating pair counts, maximum
        depth and pre-filter mask.
    """
    if not 0 < angle_threshold <= 180:
        raise ValueError('hybrid_collision: angle_threshold must be in '
                         f'(0, 180] degrees, got {angle_threshold}')
    if criterion not in CRITERIA:
        raise ValueError(f'hybrid_collision: criterion must be one of '
                         f'{CRITERIA}, got {criterion!r}')
    if criterion != 'depth_gmof' and not rho > 0:
        raise ValueError(f'hybrid_collision: rho must be > 0, got {rho}')
    cos_thr = math.cos(math.radians(angle_threshold))

    def keep_fn(n_q, n_t):
        ok = ((n_q * n_q).sum(-1) > 0.5) & ((n_t * n_t).sum(-1) > 0.5)
        return ok & ((n_q * n_t).sum(-1) < cos_thr)

    return _collision(verts_a, verts_b, faces_a, faces_b, d_threshold,
                      d_threshold, rho, detach_normals, keep_fn, criterion)


def inside_collision(verts_a: Tensor,
                     verts_b: Tensor,
                     faces_a: Tensor,
                     faces_b: Tensor,
                     max_dist: float = 0.02,
                     rho: float = 0.01,
                     detach_normals: bool = True) -> CollisionResult:
    """Nearest-vertex inside test (InterHandGen style) with GMoF.

    Every vertex of either hand inside the other hand's bounding box whose
    nearest vertex there is closer than ``max_dist`` is inside when it lies
    below the surface around that vertex (see the module docstring); its
    depth is penalised with GMoF. Unlike :func:`hybrid_collision` this also
    sees deep penetrations and nested surfaces (aligned normals), at the
    price of false positives where the surface around the nearest vertex is
    a poor local model (deep in concave regions; the exact test is the
    winding number of :func:`mmhand2p.evaluation.functional.winding_numbers`).

    Args:
        verts_a (Tensor): ``(B, Va, 3)``.
        verts_b (Tensor): ``(B, Vb, 3)``.
        faces_a (Tensor): ``(Fa, 3)`` outward winding.
        faces_b (Tensor): ``(Fb, 3)``.
        max_dist (float): no point of a hand is deeper than about 1-1.5 cm
            below its surface; larger distances to the nearest vertex are
            not penetration. Defaults to 2 cm.
        rho (float): GMoF scale (metres). Defaults to 1 cm.
        detach_normals (bool): see :func:`hybrid_collision`.

    Returns:
        CollisionResult: see :func:`hybrid_collision`.
    """

    def keep_fn(n_q, n_t):
        return (n_t * n_t).sum(-1) > 0.5

    return _collision(verts_a, verts_b, faces_a, faces_b, max_dist, 0.0, rho,
                      detach_normals, keep_fn)


def _split_hands(vertices: Tensor, faces: Tensor) -> Tuple[Tensor, ...]:
    if vertices.dim(
    ) != 4 or vertices.shape[1] != 2 or vertices.shape[-1] != 3:
        raise ValueError('collision loss: vertices must be (B, 2, V, 3) '
                         '(hand axis 0 = right, 1 = left), got '
                         f'{tuple(vertices.shape)}')
    faces = torch.as_tensor(faces, device=vertices.device).long()
    if faces.dim() == 2:
        faces = faces[None].expand(2, -1, -1)
    if faces.dim() != 3 or faces.shape[0] != 2 or faces.shape[-1] != 3:
        raise ValueError('collision loss: faces must be (F, 3) or (2, F, 3) '
                         f'(e.g. MANOLayer.faces), got {tuple(faces.shape)}')
    return vertices[:, 0], vertices[:, 1], faces[0], faces[1]


class _CollisionLossBase(nn.Module):
    """Reduction, weighting and the (B, 2, V, 3) interface."""

    def __init__(self,
                 reduction: str = 'sum',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'sum', 'mean'):
            raise ValueError("reduction must be 'none', 'sum' or 'mean', got "
                             f'{reduction!r}')
        self.reduction = reduction
        self.loss_weight = loss_weight

    def per_sample(self, vertices: Tensor, faces: Tensor) -> CollisionResult:
        raise NotImplementedError

    def forward(self, vertices: Tensor, faces: Tensor) -> Tensor:
        """Weighted, reduced loss.

        Args:
            vertices (Tensor): ``(B, 2, V, 3)`` both hands, metres.
            faces (Tensor): ``(2, F, 3)`` (``MANOLayer.faces``) or ``(F, 3)``.

        Returns:
            Tensor: scalar, or ``(B,)`` with ``reduction='none'``. With
            ``'sum'`` each sample's gradient is independent of the batch.
        """
        loss = self.per_sample(vertices, faces).loss
        if self.reduction == 'sum':
            loss = loss.sum()
        elif self.reduction == 'mean':
            loss = loss.mean() if loss.numel() else loss.sum()
        return self.loss_weight * loss


@MODELS.register_module()
class HybridCollisionLoss(_CollisionLossBase):
    """A2P's hybrid distance/normal two-hand collision loss with GMoF
    (see :func:`hybrid_collision`).

    Args:
        d_threshold (float): pair distance bound, metres. Defaults to 5 mm.
        angle_threshold (float): normal angle above which a pair counts,
            degrees. Defaults to 90.
        rho (float): GMoF scale, metres. Defaults to 1 cm.
        detach_normals (bool): no gradient through normals. Default True.
        reduction (str): over the batch, ``'sum'`` (default), ``'mean'`` or
            ``'none'``.
        loss_weight (float): multiplier. Defaults to 1.
        criterion (str): ``'depth_gmof'`` (default), ``'eq3_printed'``
            (Eq. (3) as printed; ``rho`` then in m^2) or ``'pair_gmof'``;
            see :func:`hybrid_collision`.
    """

    def __init__(self,
                 d_threshold: float = 0.005,
                 angle_threshold: float = 90.0,
                 rho: float = 0.01,
                 detach_normals: bool = True,
                 reduction: str = 'sum',
                 loss_weight: float = 1.0,
                 criterion: str = 'depth_gmof') -> None:
        super().__init__(reduction, loss_weight)
        if criterion not in CRITERIA:
            raise ValueError(f'HybridCollisionLoss: criterion must be one of '
                             f'{CRITERIA}, got {criterion!r}')
        self.d_threshold = d_threshold
        self.angle_threshold = angle_threshold
        self.rho = rho
        self.detach_normals = detach_normals
        self.criterion = criterion

    def per_sample(self, vertices: Tensor, faces: Tensor) -> CollisionResult:
        """Unweighted per-sample result for ``(B, 2, V, 3)`` vertices."""
        va, vb, fa, fb = _split_hands(vertices, faces)
        return hybrid_collision(va, vb, fa, fb, self.d_threshold,
                                self.angle_threshold, self.rho,
                                self.detach_normals, self.criterion)


@MODELS.register_module()
class InsideCollisionLoss(_CollisionLossBase):
    """Nearest-vertex inside-test two-hand collision loss with GMoF
    (InterHandGen style, see :func:`inside_collision`).

    Args:
        max_dist (float): nearest-vertex distance bound, metres. Defaults
            to 2 cm.
        rho (float): GMoF scale, metres. Defaults to 1 cm.
        detach_normals (bool): no gradient through normals. Default True.
        reduction (str): ``'sum'`` (default), ``'mean'`` or ``'none'``.
        loss_weight (float): multiplier. Defaults to 1.
    """

    def __init__(self,
                 max_dist: float = 0.02,
                 rho: float = 0.01,
                 detach_normals: bool = True,
                 reduction: str = 'sum',
                 loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.max_dist = max_dist
        self.rho = rho
        self.detach_normals = detach_normals

    def per_sample(self, vertices: Tensor, faces: Tensor) -> CollisionResult:
        """Unweighted per-sample result for ``(B, 2, V, 3)`` vertices."""
        va, vb, fa, fb = _split_hands(vertices, faces)
        return inside_collision(va, vb, fa, fb, self.max_dist, self.rho,
                                self.detach_normals)
