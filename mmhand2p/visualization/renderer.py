# Copyright (c) mmhand2p contributors. All rights reserved.
"""A small CPU mesh renderer (numpy): z-buffer rasterisation, Lambert shading.

Conventions (OpenCV pinhole camera): vertices are in camera coordinates in
metres, ``+z`` forward (into the image), ``+x`` right, ``+y`` down. A point
``(x, y, z)`` projects to ``u = fx * x / z + cx`` (column), ``v = fy * y / z
+ cy`` (row), and pixel ``(row, col)`` samples the image point ``u = col, v =
row`` (integer coordinates are pixel centres). Depth is the camera-space
``z`` of the visible surface (perspective-correct interpolation).

The rasteriser is vectorised over triangles: triangles are grouped by the
size of their pixel bounding box and every group is processed as one numpy
batch of ``(triangles, box pixels)`` candidates, so two 778-vertex hands at
256 x 256 render in a few tens of milliseconds.

Triangles with a vertex closer than ``near`` are skipped (no clipping), both
sides of a triangle are drawn and lit (two-sided lighting), and a triangle
lying exactly on the boundary between two pixels covers both (ties go to the
triangle listed first).
"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from mmhand2p.geometry.normals import vertex_normals

__all__ = [
    'RenderOutput', 'render_meshes', 'vertex_normals', 'DEFAULT_MESH_COLORS'
]

#: default colours (RGB in [0, 1]) of meshes 0, 1, 2, ... (cycled): a warm
#: skin tone for the right hand, a bluish one for the left hand, ...
DEFAULT_MESH_COLORS = np.array([
    [0.93, 0.72, 0.60],
    [0.58, 0.72, 0.93],
    [0.60, 0.88, 0.62],
    [0.93, 0.86, 0.52],
    [0.80, 0.62, 0.90],
])


class RenderOutput(NamedTuple):
    """What :func:`render_meshes` returns.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB.
        depth (np.ndarray): ``(H, W)`` float32 camera ``z`` of the visible
            surface in metres, 0 where no mesh is visible.
        mesh_id (np.ndarray): ``(H, W)`` int32 index of the visible mesh, -1
            for the background.
        face_id (np.ndarray): ``(H, W)`` int32 index of the visible triangle
            within its mesh, -1 for the background.
    """
    image: np.ndarray
    depth: np.ndarray
    mesh_id: np.ndarray
    face_id: np.ndarray


def _intrinsics(intrinsics) -> Tuple[float, float, float, float]:
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape == (3, 3):
        return k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if k.shape == (4, ):
        return tuple(k.tolist())
    raise ValueError('intrinsics must be (fx, fy, cx, cy) or a 3x3 matrix, '
                     f'got shape {k.shape}')


def _as_mesh_list(vertices, faces):
    if isinstance(vertices, np.ndarray) and vertices.ndim == 2:
        vertices = [vertices]
    verts = [np.asarray(v, dtype=np.float64) for v in vertices]
    if isinstance(faces, np.ndarray) or (len(faces) > 0
                                         and np.ndim(faces[0]) == 1):
        faces = [np.asarray(faces, dtype=np.int64)] * len(verts)
    else:
        faces = [np.asarray(f, dtype=np.int64) for f in faces]
    if len(faces) != len(verts):
        raise ValueError(f'{len(verts)} meshes but {len(faces)} face arrays')
    for v, f in zip(verts, faces):
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f'mesh vertices must be (V, 3), got {v.shape}')
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f'faces must be (F, 3), got {f.shape}')
        if len(f) and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError('face index out of range')
    return verts, faces


def _colors(colors, n: int) -> np.ndarray:
    if colors is None:
        return DEFAULT_MESH_COLORS[np.arange(n) % len(DEFAULT_MESH_COLORS)]
    c = np.asarray(colors, dtype=np.float64)
    if c.ndim == 1:
        c = np.broadcast_to(c, (n, c.shape[0]))
    if c.shape != (n, 3):
        raise ValueError(f'colors must be (3,) or ({n}, 3), got {c.shape}')
    if c.max() > 1.0:
        c = c / 255.0
    return c


def _rasterize(uv: np.ndarray, z: np.ndarray, height: int, width: int,
               max_candidates: int):
    """Z-buffer of triangles given in pixels.

    Args:
        uv (np.ndarray): ``(T, 3, 2)`` projected corners (column, row).
        z (np.ndarray): ``(T, 3)`` camera depths (> 0).

    Returns:
        tuple: ``zbuf`` ``(H*W,)`` (inf where empty), ``tri`` ``(H*W,)``
        triangle index (-1 where empty), ``bary`` ``(H*W, 3)``
        perspective-correct barycentric coordinates.
    """
    npix = height * width
    zbuf = np.full(npix, np.inf)
    tbuf = np.full(npix, -1, dtype=np.int64)
    bbuf = np.zeros((npix, 3))
    if len(uv) == 0:
        return zbuf, tbuf, bbuf
    u, v = uv[..., 0], uv[..., 1]
    umin = np.maximum(np.ceil(u.min(1)), 0).astype(np.int64)
    umax = np.minimum(np.floor(u.max(1)), width - 1).astype(np.int64)
    vmin = np.maximum(np.ceil(v.min(1)), 0).astype(np.int64)
    vmax = np.minimum(np.floor(v.max(1)), height - 1).astype(np.int64)
    area = ((u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) *
            (v[:, 1] - v[:, 0]))
    ok = (umax >= umin) & (vmax >= vmin) & (np.abs(area) > 1e-12)
    tids = np.nonzero(ok)[0]
    if len(tids) == 0:
        return zbuf, tbuf, bbuf
    bw = umax[tids] - umin[tids] + 1
    bh = vmax[tids] - vmin[tids] + 1
    # bucket triangles by the power of two that holds their bounding box
    size = np.maximum(bw, bh)
    bucket = np.ceil(np.log2(size)).astype(np.int64)
    inv_z = 1.0 / z
    for b in np.unique(bucket):
        side = 1 << int(b)
        sel = tids[bucket == b]
        oy, ox = np.divmod(np.arange(side * side), side)
        chunk = max(1, max_candidates // (side * side))
        for start in range(0, len(sel), chunk):
            t = sel[start:start + chunk]
            pu = umin[t, None] + ox[None]  # (n, side*side)
            pv = vmin[t, None] + oy[None]
            valid = (pu <= umax[t, None]) & (pv <= vmax[t, None])
            uu, vv, aa = u[t], v[t], area[t, None]
            # edge functions -> screen-space barycentrics
            w0 = ((uu[:, 1, None] - pu) * (vv[:, 2, None] - pv) -
                  (uu[:, 2, None] - pu) * (vv[:, 1, None] - pv)) / aa
            w1 = ((uu[:, 2, None] - pu) * (vv[:, 0, None] - pv) -
                  (uu[:, 0, None] - pu) * (vv[:, 2, None] - pv)) / aa
            w2 = 1.0 - w0 - w1
            inside = valid & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
            ti, pi = np.nonzero(inside)
            if len(ti) == 0:
                continue
            w = np.stack([w0[ti, pi], w1[ti, pi], w2[ti, pi]], axis=1)
            tri = t[ti]
            iz = (w * inv_z[tri]).sum(1)
            depth = 1.0 / iz
            pix = pv[ti, pi] * width + pu[ti, pi]
            # nearest fragment per pixel within the batch, then vs the buffer
            order = np.lexsort((tri, depth, pix))
            pix_s = pix[order]
            first = np.ones(len(order), bool)
            first[1:] = pix_s[1:] != pix_s[:-1]
            o = order[first]
            p = pix[o]
            closer = (depth[o] < zbuf[p]) | ((depth[o] == zbuf[p]) &
                                             (tri[o] < tbuf[p]))
            o, p = o[closer], p[closer]
            zbuf[p] = depth[o]
            tbuf[p] = tri[o]
            bbuf[p] = w[o] * inv_z[tri[o]] * depth[o, None]
    return zbuf, tbuf, bbuf


def render_meshes(vertices: Union[np.ndarray, Sequence[np.ndarray]],
                  faces: Union[np.ndarray, Sequence[np.ndarray]],
                  intrinsics,
                  image_size: Optional[Tuple[int, int]] = None,
                  colors=None,
                  background=None,
                  light_dir: Sequence[float] = (0.35, -0.45, -1.0),
                  ambient: float = 0.35,
                  diffuse: float = 0.65,
                  smooth: bool = True,
                  near: float = 1e-3,
                  supersample: int = 1,
                  max_candidates: int = 1 << 22) -> RenderOutput:
    """Render triangle meshes with a z-buffer and Lambert shading.

    Args:
        vertices: ``(N, V, 3)`` array or a list of ``(V_i, 3)`` arrays, camera
            coordinates in metres (OpenCV: ``+z`` forward, ``+y`` down).
        faces: ``(F, 3)`` shared by all meshes, or a list of ``(F_i, 3)``.
        intrinsics: ``(fx, fy, cx, cy)`` or a ``(3, 3)`` camera matrix.
        image_size (tuple, optional): ``(H, W)``; taken from ``background``
            when it is an image.
        colors (optional): ``(3,)`` or ``(N, 3)`` RGB in [0, 1] (or 0-255);
            default :data:`DEFAULT_MESH_COLORS`.
        background (optional): ``(H, W, 3)`` image (uint8, or float in
            [0, 1]) to draw onto, or an RGB colour; default black.
        light_dir (sequence): direction from the surface towards a
            directional light, camera frame (default: from the camera, a bit
            up and right).
        ambient (float): ambient term of the shading.
        diffuse (float): Lambert term of the shading.
        smooth (bool): interpolate vertex normals (else flat shading).
        near (float): triangles with a vertex at ``z < near`` are skipped.
        supersample (int): render at ``supersample`` times the resolution
            and average the colours (anti-aliasing); depth / ids are those of
            the centre sample of each pixel.
        max_candidates (int): size of the numpy batches (memory bound).

    Returns:
        RenderOutput: ``image`` ``(H, W, 3)`` uint8, ``depth`` ``(H, W)``
        float32 (0 = background), ``mesh_id`` / ``face_id`` ``(H, W)`` int32
        (-1 = background).
    """
    verts, faces_l = _as_mesh_list(vertices, faces)
    fx, fy, cx, cy = _intrinsics(intrinsics)
    bg_img = None
    bg_col = np.zeros(3)
    if background is not None:
        bgarr = np.asarray(background)
        if bgarr.ndim == 3:
            bg_img = bgarr.astype(np.float64)
            if bgarr.dtype == np.uint8 or bg_img.max() > 1.0:
                bg_img = bg_img / 255.0
            if image_size is not None and tuple(image_size) != bgarr.shape[:2]:
                raise ValueError(f'image_size {tuple(image_size)} does not '
                                 f'match the background {bgarr.shape[:2]}')
            image_size = bgarr.shape[:2]
        else:
            bg_col = bgarr.astype(np.float64).reshape(3)
            if bgarr.dtype == np.uint8 or bg_col.max() > 1.0:
                bg_col = bg_col / 255.0
    if image_size is None:
        raise ValueError('image_size is required without a background image')
    height, width = int(image_size[0]), int(image_size[1])
    s = int(supersample)
    if s < 1:
        raise ValueError('supersample must be >= 1')
    H, W = height * s, width * s
    # pixel (r, c) of the fine grid samples the image point
    # ((c + 0.5) / s - 0.5, (r + 0.5) / s - 0.5)
    sfx, sfy = fx * s, fy * s
    scx, scy = (cx + 0.5) * s - 0.5, (cy + 0.5) * s - 0.5
    cols = _colors(colors, len(verts))

    tri_v, tri_mesh, tri_face = [], [], []
    normals = []
    offsets = [0]
    for i, (v, f) in enumerate(zip(verts, faces_l)):
        tri_v.append(v[f])
        tri_mesh.append(np.full(len(f), i, np.int64))
        tri_face.append(np.arange(len(f), dtype=np.int64))
        normals.append(vertex_normals(v, f)[f] if smooth else None)
        offsets.append(offsets[-1] + len(f))
    if sum(len(f) for f in faces_l):
        tv = np.concatenate(tri_v)
        tmesh = np.concatenate(tri_mesh)
        tface = np.concatenate(tri_face)
    else:
        tv = np.zeros((0, 3, 3))
        tmesh = tface = np.zeros(0, np.int64)
    keep = np.all(
        tv[..., 2] >= near, axis=1) & np.all(
            np.isfinite(tv), axis=(1, 2))
    kidx = np.nonzero(keep)[0]
    tk = tv[kidx]
    z = tk[..., 2]
    uv = np.stack([sfx * tk[..., 0] / z + scx, sfy * tk[..., 1] / z + scy],
                  axis=-1)
    zbuf, tbuf, bary = _rasterize(uv, z, H, W, max_candidates)

    hit = tbuf >= 0
    img = np.empty((H * W, 3))
    if bg_img is not None:
        img[:] = np.repeat(np.repeat(bg_img, s, 0), s, 1).reshape(-1, 3)
    else:
        img[:] = bg_col
    if hit.any():
        t = kidx[tbuf[hit]]
        b = bary[hit]
        pts = (tv[t] * b[..., None]).sum(1)
        if smooth:
            tn = np.concatenate(normals)[t]
            n = (tn * b[..., None]).sum(1)
        else:
            n = np.cross(tv[t, 1] - tv[t, 0], tv[t, 2] - tv[t, 0])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        # two-sided: make normals face the camera (at the origin)
        flip = (n * pts).sum(1) > 0
        n[flip] = -n[flip]
        ldir = np.asarray(light_dir, np.float64)
        ldir = ldir / np.linalg.norm(ldir)
        lam = np.clip(n @ ldir, 0.0, 1.0)
        shade = ambient + diffuse * lam
        img[hit] = np.clip(cols[tmesh[t]] * shade[:, None], 0.0, 1.0)
    img = img.reshape(H, W, 3)
    mesh_id = np.full(H * W, -1, np.int32)
    face_id = np.full(H * W, -1, np.int32)
    mesh_id[hit] = tmesh[kidx[tbuf[hit]]]
    face_id[hit] = tface[kidx[tbuf[hit]]]
    depth = np.where(hit, zbuf, 0.0).astype(np.float32)
    mesh_id, face_id, depth = (
        a.reshape(H, W) for a in (mesh_id, face_id, depth))
    if s > 1:
        img = img.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        c = s // 2
        depth = depth[c::s, c::s]
        mesh_id = mesh_id[c::s, c::s]
        face_id = face_id[c::s, c::s]
    image = np.round(img * 255.0).astype(np.uint8)
    return RenderOutput(image, np.ascontiguousarray(depth),
                        np.ascontiguousarray(mesh_id),
                        np.ascontiguousarray(face_id))
