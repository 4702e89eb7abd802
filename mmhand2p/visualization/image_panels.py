# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pictures of whole-image predictions: the meshes over the photo with
labelled hand boxes, and the meshes seen from the side.

These are the panels :meth:`TwoHandLocalVisualizer.add_datasample
<mmhand2p.visualization.TwoHandLocalVisualizer.add_datasample>` draws with
``panels=('overlay', 'side')`` (what ``Hand2PInferencer`` and
``demo/image_demo.py`` write as ``{stem}_overlay.jpg`` / ``{stem}_side.jpg``).
Images are RGB uint8; every hand is one row of the instance layout
(:data:`~mmhand2p.structures.INSTANCE_FIELDS`): ``(N, V, 3)`` vertices in
the image's camera frame, metres, ``(N,)`` labels (0 right, 1 left).
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmhand2p.structures import HAND_SIDES
from .renderer import DEFAULT_MESH_COLORS, render_meshes

__all__ = [
    'vis_scale', 'scaled_intrinsics', 'place_labels', 'box_label_layout',
    'draw_mesh_overlay', 'draw_side_panel', 'BOX_COLORS'
]

#: RGB 0-255 colours of the boxes of right / left hands (the mesh colours)
BOX_COLORS = ((237, 184, 153), (148, 184, 237))


def vis_scale(height: int, width: int, max_side: Optional[int]) -> float:
    """The factor (<= 1) that fits an image into ``max_side`` pixels.

    The rendered pictures (overlay, side view) of a very large photo are
    drawn at this scale: the CPU renderer keeps a few float64 buffers per
    pixel, which for an 8000 x 6000 photo would take gigabytes.

    Args:
        height, width (int): image size.
        max_side (int, optional): largest side of the picture; None or 0:
            no limit.

    Returns:
        float: ``min(1, max_side / max(height, width))``.
    """
    if not max_side:
        return 1.0
    return min(1.0, float(max_side) / float(max(height, width)))


def scaled_intrinsics(k: np.ndarray, s: float) -> np.ndarray:
    """Intrinsics of the image resized by ``s`` (pixel centres at integer
    coordinates: ``u' = (u + 0.5) s - 0.5``).

    Args:
        k (np.ndarray): ``(3, 3)``.
        s (float): the scale.

    Returns:
        np.ndarray: ``(3, 3)`` float64.
    """
    k = np.asarray(k, np.float64).reshape(3, 3).copy()
    k[0, 0] *= s
    k[1, 1] *= s
    k[0, 2] = (k[0, 2] + 0.5) * s - 0.5
    k[1, 2] = (k[1, 2] + 0.5) * s - 0.5
    return k


def _meshes(vertices: Optional[np.ndarray], labels: np.ndarray,
            faces: np.ndarray, mesh_colors: Optional[np.ndarray]):
    """The finite meshes: vertices, faces and colours per hand."""
    colors = DEFAULT_MESH_COLORS if mesh_colors is None else \
        np.asarray(mesh_colors, np.float64).reshape(-1, 3)
    if vertices is None:
        return [], [], np.zeros((0, 3)), []
    keep = [i for i in range(len(labels)) if np.isfinite(vertices[i]).all()]
    return ([vertices[i] for i in keep], [faces[int(labels[i])] for i in keep],
            np.asarray([colors[int(labels[i])] for i in keep],
                       np.float64).reshape(-1, 3), keep)


def draw_mesh_overlay(image: np.ndarray,
                      vertices: Optional[np.ndarray],
                      labels: np.ndarray,
                      faces: np.ndarray,
                      intrinsics: np.ndarray,
                      bboxes: Optional[np.ndarray] = None,
                      scores: Optional[np.ndarray] = None,
                      max_side: Optional[int] = 1280,
                      mesh_colors: Optional[np.ndarray] = None,
                      box_colors: Sequence = BOX_COLORS) -> np.ndarray:
    """The hand meshes rendered over the photo, and their labelled boxes.

    Rendering is :func:`~mmhand2p.visualization.render_meshes` (the
    package's CPU renderer); box labels (``'{row} {right|left} {score}'``)
    are placed by :func:`box_label_layout` (never overlapping, never outside
    the picture).

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB, full resolution.
        vertices (np.ndarray, optional): ``(N, V, 3)`` camera frame, metres
            (None: no meshes).
        labels (np.ndarray): ``(N,)`` 0 right, 1 left.
        faces (np.ndarray): ``(2, F, 3)`` right / left faces.
        intrinsics (np.ndarray): ``(3, 3)`` of the full image.
        bboxes (np.ndarray, optional): ``(N, 4)`` x1, y1, x2, y2 pixels.
        scores (np.ndarray, optional): ``(N,)`` shown next to the boxes.
        max_side (int, optional): the picture is downscaled to fit (see
            :func:`vis_scale`); None: full size.
        mesh_colors (np.ndarray, optional): ``(2, 3)`` RGB in [0, 1] of the
            right / left meshes (default: the renderer's).
        box_colors (sequence): RGB 0-255 of the right / left boxes.

    Returns:
        np.ndarray: ``(h, w, 3)`` uint8 RGB, ``h, w`` = the image size times
        the downscale factor.
    """
    h, w = image.shape[:2]
    s = vis_scale(h, w, max_side)
    if s < 1.0:
        size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
        canvas = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        s = size[0] / w
    else:
        canvas = image.copy()
    labels = np.asarray(labels).reshape(-1)
    verts, fcs, colors, _ = _meshes(vertices, labels, faces, mesh_colors)
    if verts:
        canvas = np.ascontiguousarray(
            render_meshes(
                verts,
                fcs,
                scaled_intrinsics(intrinsics, s),
                colors=colors,
                background=canvas).image)
    if bboxes is not None and len(labels):
        box_colors = [tuple(int(c) for c in col) for col in box_colors]
        thick = max(1, int(round(min(canvas.shape[:2]) / 300)))
        boxes = (np.asarray(bboxes, np.float64).reshape(-1, 4) + 0.5) * s \
            - 0.5
        texts = []
        for i in range(len(labels)):
            color = box_colors[int(labels[i])]
            x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thick,
                          cv2.LINE_AA)
            text = f'{i} {HAND_SIDES[int(labels[i])]}'
            if scores is not None:
                text += f' {float(scores[i]):.2f}'
            texts.append(text)
        layout = box_label_layout(texts, boxes, canvas.shape[:2], thick)
        for i, org in enumerate(layout['origins']):
            if org is None:  # no room left in a tiny picture
                continue
            color = box_colors[int(labels[i])]
            for col, width in (((0, 0, 0), layout['outline']),
                               (color, layout['thickness'])):
                cv2.putText(canvas, texts[i], org, _FONT, layout['scale'], col,
                            width, cv2.LINE_AA)
    return canvas


def draw_side_panel(vertices: Optional[np.ndarray],
                    labels: np.ndarray,
                    faces: np.ndarray,
                    size: Tuple[int, int],
                    angle_deg: float = 90.0,
                    background: Sequence[int] = (255, 255, 255),
                    mesh_colors: Optional[np.ndarray] = None) -> np.ndarray:
    """The meshes seen from the side: turned by ``angle_deg`` about the
    vertical axis through their centre and framed by
    :func:`~mmhand2p.visualization.side_view_camera`. Without meshes: a
    blank panel saying so.

    Args:
        vertices (np.ndarray, optional): ``(N, V, 3)`` camera frame, metres.
        labels (np.ndarray): ``(N,)`` 0 right, 1 left.
        faces (np.ndarray): ``(2, F, 3)``.
        size (tuple): ``(h, w)`` of the panel.
        angle_deg (float): degrees (90: seen from the camera's right).
        background (sequence): RGB 0-255.
        mesh_colors (np.ndarray, optional): ``(2, 3)`` RGB in [0, 1].

    Returns:
        np.ndarray: ``(h, w, 3)`` uint8 RGB.
    """
    from .local_visualizer import side_view_camera
    h, w = int(size[0]), int(size[1])
    panel = np.empty((h, w, 3), np.uint8)
    panel[:] = tuple(int(c) for c in background)
    labels = np.asarray(labels).reshape(-1)
    verts, fcs, colors, _ = _meshes(vertices, labels, faces, mesh_colors)
    if verts:
        transform, k = side_view_camera(
            np.concatenate(verts), (h, w), angle_deg)
        moved = [v @ transform[:3, :3].T + transform[:3, 3] for v in verts]
        panel = np.ascontiguousarray(
            render_meshes(moved, fcs, k, colors=colors,
                          background=panel).image)
        text = f'side view ({angle_deg:g} deg)'
    else:
        text = 'no hands found'
    scale = max(min(h, w) / 640.0, 0.35)
    (_, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(panel, text, (6, 6 + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (80, 80, 80), 1, cv2.LINE_AA)
    return panel


# ---------------------------------------------------------------------------
# box labels
# ---------------------------------------------------------------------------
_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: a rectangle ``(x, y, w, h)``: pixels ``[x, x + w) x [y, y + h)``
Rect = Tuple[int, int, int, int]


def _overlaps(a: Rect, b: Rect) -> bool:
    """Whether two ``(x, y, w, h)`` rectangles (half-open pixel ranges
    ``[x, x + w) x [y, y + h)``) share a pixel."""
    return (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3]
            and b[1] < a[1] + a[3])


def place_labels(boxes: np.ndarray,
                 sizes: Sequence[Tuple[int, int]],
                 image_size: Tuple[int, int],
                 gap: int = 2) -> List[Optional[Rect]]:
    """Where to put one label per box so that no two labels overlap and
    none leaves the image.

    Each label goes to the first free place of: above its box (left
    aligned, then right aligned), below it (left, right), inside its top
    left corner, inside its bottom left corner; first among those that lie
    inside the picture, then among the same moved inside (a box at the top
    edge gets its label below it, or inside its top). If all of those are
    taken (labels of boxes that share a corner), the free place nearest to
    the first one on a grid over the whole picture (half a label apart),
    e.g. stacked next to it. Labels are placed in order, so hand 0 keeps
    the best place.

    Args:
        boxes (np.ndarray): ``(N, 4)`` ``x1, y1, x2, y2`` picture pixels.
        sizes (sequence): ``N`` label sizes ``(w, h)`` in pixels.
        image_size (tuple): ``(h, w)`` of the picture.
        gap (int): pixels between a label outside its box and the box.

    Returns:
        list: per box, ``(x, y, w, h)`` (pixels ``[x, x + w) x [y, y +
        h)``, inside ``[0, W) x [0, H)``, disjoint from the others), or
        None where the label is larger than the picture or no free place
        is left.
    """
    img_h, img_w = int(image_size[0]), int(image_size[1])
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    placed: List[Rect] = []
    out: List[Optional[Rect]] = []
    for (x1, y1, x2, y2), (w, h) in zip(boxes.tolist(), sizes):
        w, h = int(w), int(h)
        if w < 1 or h < 1 or w > img_w or h > img_h or \
                not np.isfinite([x1, y1, x2, y2]).all():
            out.append(None)
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
        wanted = [(x1, y1 - gap - h), (x2 - w, y1 - gap - h),
                  (x1, y2 + gap + 1), (x2 - w, y2 + gap + 1),
                  (x1 + gap, y1 + gap), (x1 + gap, y2 - gap - h)]

        def clamp(x: int, y: int) -> Rect:
            return (min(max(x, 0), img_w - w), min(max(y, 0), img_h - h), w, h)

        # first the places that fit as they are, then moved inside
        fitting = [(x, y, w, h) for x, y in wanted
                   if clamp(x, y)[:2] == (x, y)]
        clamped = [clamp(x, y) for x, y in wanted]
        rect = next((r for r in fitting + clamped
                     if not any(_overlaps(r, p) for p in placed)), None)
        if rect is None:  # the nearest free grid place to the first wish
            x0, y0, _, _ = clamp(*wanted[0])
            xs = np.unique(np.r_[np.arange(0, img_w - w + 1, max(1, w // 2)),
                                 img_w - w, x0])
            ys = np.unique(np.r_[np.arange(0, img_h - h + 1, max(1, h // 2)),
                                 img_h - h, y0])
            gx, gy = np.meshgrid(xs, ys)
            order = np.argsort(
                np.abs(gx - x0).ravel() + np.abs(gy - y0).ravel(),
                kind='stable')
            for j in order:
                r = (int(gx.flat[j]), int(gy.flat[j]), w, h)
                if not any(_overlaps(r, p) for p in placed):
                    rect = r
                    break
        if rect is not None:
            placed.append(rect)
        out.append(rect)
    return out


def box_label_layout(texts: Sequence[str],
                     boxes: np.ndarray,
                     image_size: Tuple[int, int],
                     thickness: int = 1,
                     min_scale: float = 0.25) -> dict:
    """Font size and places of the box labels of
    :func:`draw_mesh_overlay`.

    The font starts at ``0.4 * thickness`` (the size used so far) and
    shrinks (by 0.8 per step, down to ``min_scale``) until every label finds
    a place (:func:`place_labels`); in a picture too small even then, the
    labels without a place are left out.

    Args:
        texts (sequence of str): one label per box.
        boxes (np.ndarray): ``(N, 4)`` ``x1, y1, x2, y2`` picture pixels.
        image_size (tuple): ``(h, w)``.
        thickness (int): the text's stroke; the black outline is 2 wider.

    Returns:
        dict: ``scale``, ``thickness``, ``outline`` (stroke widths),
        ``rects`` (per label ``(x, y, w, h)`` that holds every pixel
        ``cv2.putText`` draws, or None) and ``origins`` (per label the
        ``putText`` origin, or None).
    """
    thickness = max(1, int(thickness))
    outline = thickness + 2
    scale = 0.4 * thickness
    while True:
        sizes, bases = [], []
        for text in texts:
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, outline)
            # the outline's round caps reach ~outline / 2 past the glyph box
            pad = outline // 2 + 1
            sizes.append((tw + 2 * pad, th + base + 2 * pad))
            bases.append((pad, th + pad))
        rects = place_labels(boxes, sizes, image_size)
        if all(r is not None for r in rects) or scale <= min_scale:
            break
        scale = max(min_scale, scale * 0.8)
    origins = [
        None if r is None else (r[0] + dx, r[1] + dy)
        for r, (dx, dy) in zip(rects, bases)
    ]
    return dict(
        scale=scale,
        thickness=thickness,
        outline=outline,
        rects=rects,
        origins=origins)
