# Copyright (c) mmhand2p contributors. All rights reserved.
"""Images of the synthetic two-hand set: random backgrounds,
:func:`render_view` (the package's CPU renderer
:func:`mmhand2p.visualization.render_meshes`) and the extra per-image files
(segmentation, depth)."""
import math
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'extra_paths', 'load_extras', 'random_background', 'render_view'
]


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def _random_color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.uint8(
        [[[rng.integers(0, 180),
           rng.integers(0, 256),
           rng.integers(30, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def random_background(rng: np.random.Generator, height: int,
                      width: int) -> np.ndarray:
    """A random background: a colour gradient (linear or radial) or smooth
    coloured noise, some random shapes, a little blur and pixel noise.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    kind = rng.choice(3)
    c0, c1 = _random_color(rng), _random_color(rng)
    if kind == 0:  # linear gradient
        ang = rng.uniform(0, 2 * np.pi)
        t = xx * math.cos(ang) + yy * math.sin(ang)
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        img = c0 + t[..., None] * (c1 - c0)
    elif kind == 1:  # radial gradient
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        t = np.hypot(xx - cx, yy - cy)
        t = t / max(t.max(), 1e-6)
        img = c0 + t[..., None] * (c1 - c0)
    else:  # smooth coloured noise
        g = int(rng.integers(2, 9))
        coarse = rng.uniform(0, 255, (g, g, 3)).astype(np.float32)
        img = cv2.resize(
            coarse, (width, height),
            interpolation=cv2.INTER_CUBIC).astype(np.float64)
        img = 0.5 * img + 0.5 * c0
    img = np.clip(img, 0, 255).astype(np.uint8)
    size = max(height, width)
    for _ in range(int(rng.integers(0, 7))):
        col = tuple(int(v) for v in _random_color(rng))
        shape = rng.choice(4)
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if shape == 0:
            cv2.circle(img, p, int(rng.uniform(0.03, 0.25) * size), col, -1,
                       cv2.LINE_AA)
        elif shape == 1:
            q = (p[0] + int(rng.normal(0, 0.3 * size)),
                 p[1] + int(rng.normal(0, 0.3 * size)))
            cv2.rectangle(img, p, q, col, -1)
        elif shape == 2:
            q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, p, q, col, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            pts = np.array(p) + rng.normal(0, 0.15 * size,
                                           (int(rng.integers(3, 7)), 2))
            cv2.fillPoly(img, [pts.astype(np.int32)], col, cv2.LINE_AA)
    sigma = rng.uniform(0.0, 2.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return img


def render_view(
    verts_cam: Sequence[np.ndarray],
    faces: Sequence[np.ndarray],
    seg_ids: Sequence[int],
    cam: dict,
    image_size: Tuple[int, int],
    colors: np.ndarray,
    light_cam: np.ndarray,
    background: np.ndarray,
    ambient: float = 0.4,
    diffuse: float = 0.6,
    noise_std: float = 0.0,
    rng: Optional[np.random.Generator] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the present hands of one camera view.

    Args:
        verts_cam (sequence): ``(778, 3)`` arrays, camera frame, metres.
        faces (sequence): ``(F, 3)`` per mesh.
        seg_ids (sequence): segmentation id per mesh (:data:`SEG_RIGHT`,
            :data:`SEG_LEFT`).
        cam (dict): ``focal``, ``princpt``.
        image_size (tuple): ``(H, W)``.
        colors (np.ndarray): ``(N, 3)`` RGB in [0, 1].
        light_cam (np.ndarray): ``(3,)`` direction towards the light, camera
            frame.
        background (np.ndarray): ``(H, W, 3)`` uint8 RGB.
        noise_std (float): Gaussian pixel noise (0-255 scale).
        rng (np.random.Generator, optional): for the noise.

    Returns:
        tuple: ``image`` ``(H, W, 3)`` uint8 BGR, ``seg`` ``(H, W)`` uint8,
        ``depth_mm`` ``(H, W)`` uint16 (0 = background).
    """
    from mmhand2p.visualization import render_meshes
    fx, fy = cam['focal']
    cx, cy = cam['princpt']
    out = render_meshes(
        list(verts_cam),
        list(faces),
        intrinsics=(fx, fy, cx, cy),
        image_size=image_size,
        colors=colors,
        background=background,
        light_dir=light_cam,
        ambient=ambient,
        diffuse=diffuse)
    img = out.image
    if noise_std > 0 and rng is not None:
        img = np.clip(img + rng.normal(0.0, noise_std, img.shape), 0,
                      255).astype(np.uint8)
    lut = np.zeros(len(verts_cam) + 1, np.uint8)
    lut[1:] = seg_ids
    seg = lut[out.mesh_id + 1]
    depth_mm = np.clip(np.round(out.depth * 1000.0), 0,
                       65535).astype(np.uint16)
    return cv2.cvtColor(img, cv2.COLOR_RGB2BGR), seg, depth_mm


def extra_paths(img_path: str) -> Dict[str, str]:
    """``{'seg': ..._seg.png, 'depth': ..._depth.png}`` next to an image."""
    stem = osp.splitext(img_path)[0]
    return dict(seg=stem + '_seg.png', depth=stem + '_depth.png')


def load_extras(img_path: str) -> Dict[str, np.ndarray]:
    """The synthetic ground truth saved next to an image.

    Returns:
        dict: ``seg`` ``(H, W)`` uint8 (0 background, 1 right, 2 left) and
        ``depth`` ``(H, W)`` float32 metres (0 = background).
    """
    paths = extra_paths(img_path)
    out = {}
    for key, path in paths.items():
        arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise FileNotFoundError(
                f'synthetic {key} map {path!r} is missing or unreadable '
                '(generate the split with '
                'tools/dataset_converters/make_synthetic_interhand.py)')
        out[key] = arr
    out['depth'] = out['depth'].astype(np.float32) / 1000.0
    return out
