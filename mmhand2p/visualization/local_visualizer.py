# Copyright (c) mmhand2p contributors. All rights reserved.
"""Draw two-hand predictions: mesh overlay, 2D skeletons and a side view.

The picture :meth:`TwoHandLocalVisualizer.add_datasample` draws is two panels
side by side::

    [ image + predicted meshes + GT / predicted skeletons | side view ]

When the predictions also carry the stage-1 hands that a refiner kept
(``unrefined_vertices`` / ``unrefined_joints_3d``, see
:meth:`~mmhand2p.models.refiners.TwoHandDiffusionRefiner.refine`), it is a
before/after picture, twice as wide, with the vertices of each hand that lie
inside the other hand drawn in ``penetration_color``::

    [ stage 1: overlay | side view ][ refined: overlay | side view ]

Both side views use one camera, framed on the two sets of hands together.

Geometry (see ``docs/data_pipeline.md``): the vertices and 3D joints of a
packed :class:`~mmhand2p.structures.HandDataSample` live in the *virtual
camera* of the network input, whose intrinsics are ``cam_intrinsics`` (K').
That camera is the original one turned by ``rot_z`` about its optical axis
(``X' = rot_z @ M @ X``, ``M = diag(-1, 1, 1)`` when the sample was flipped,
identity otherwise) and re-focused on the crop. Hence

- on the network input (``image_space='input'``) points project with K' as
  they are;
- on the original image (``image_space='original'``) they are first taken
  back, ``X = M @ rot_z.T @ X'``, and project with ``ori_cam_intrinsics``;
  2D annotations (input pixels) map back through the inverse of
  ``crop_affine``; a flipped sample's hand axis is swapped back, so colours
  always follow the true handedness in the picture drawn.
"""
import logging
import math
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.logging import print_log
from mmengine.visualization import Visualizer

from mmhand2p.registry import VISUALIZERS
from .image_panels import BOX_COLORS, draw_mesh_overlay, draw_side_panel
from .renderer import DEFAULT_MESH_COLORS, render_meshes

#: the panels of a whole-image picture (``panels`` of ``add_datasample``)
IMAGE_PANELS = ('overlay', 'side')

__all__ = [
    'TwoHandLocalVisualizer', 'drawing_camera', 'project_to_image',
    'side_view_camera', 'penetrating_vertices'
]

_MIRROR = np.diag([-1.0, 1.0, 1.0])
_IMAGE_SPACES = ('auto', 'input', 'original')


def _np(x) -> Optional[np.ndarray]:
    """Tensor / array / list to a float64 or bool numpy array (None kept)."""
    if x is None:
        return None
    if hasattr(x, 'detach'):
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    return arr if arr.dtype == bool else arr.astype(np.float64)


def drawing_camera(metainfo: dict, image_space: str
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The camera of the image being drawn on.

    Args:
        metainfo (dict): a data sample's metainfo (``cam_intrinsics``, and for
            the original image ``ori_cam_intrinsics``, ``rot_z``, ``flip``,
            ``crop_affine``).
        image_space (str): ``'input'`` or ``'original'``.

    Returns:
        tuple: ``K`` ``(3, 3)`` of the image; ``R`` ``(3, 3)`` taking sample
        points (virtual camera) to that image's camera (``X = R @ X'``);
        ``A`` ``(2, 3)`` taking the sample's 2D points (input pixels) to that
        image's pixels; ``swap`` whether the hand axis must be swapped (a
        flipped sample drawn on the original image).
    """
    k_in = metainfo.get('cam_intrinsics')
    if image_space == 'input':
        if k_in is None:
            raise KeyError('the data sample has no cam_intrinsics: cannot '
                           'project its 3D points onto the input image')
        return (_np(k_in).reshape(3, 3), np.eye(3),
                np.array([[1.0, 0, 0], [0, 1.0, 0]]), False)
    if image_space != 'original':
        raise ValueError(f"image_space must be 'input' or 'original', got "
                         f'{image_space!r}')
    k_ori = metainfo.get('ori_cam_intrinsics', k_in)
    if k_ori is None:
        raise KeyError('the data sample has neither ori_cam_intrinsics nor '
                       'cam_intrinsics: cannot project onto the image')
    rot_z = metainfo.get('rot_z')
    rot = np.eye(3) if rot_z is None else _np(rot_z).reshape(3, 3).T
    flip = bool(metainfo.get('flip', False))
    if flip:
        rot = _MIRROR @ rot
    affine = metainfo.get('crop_affine')
    if affine is None:
        back = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    else:
        a = np.vstack([_np(affine).reshape(2, 3), [0.0, 0.0, 1.0]])
        back = np.linalg.inv(a)[:2]
    return _np(k_ori).reshape(3, 3), rot, back, flip


def project_to_image(points: np.ndarray,
                     intrinsics: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pinhole projection (pixel centres at integer coordinates).

    Args:
        points (np.ndarray): ``(..., 3)`` camera frame.
        intrinsics (np.ndarray): ``(3, 3)``.

    Returns:
        tuple: ``(..., 2)`` pixels and ``(...)`` bool, True where ``z > 0``.
    """
    p = np.asarray(points, np.float64)
    z = p[..., 2]
    front = z > 1e-6
    zs = np.where(front, z, 1.0)
    uvw = p @ np.asarray(intrinsics, np.float64).T
    return uvw[..., :2] / zs[..., None], front


def side_view_camera(vertices: np.ndarray,
                     image_size: Tuple[int, int],
                     angle_deg: float = 90.0,
                     fill: float = 0.45) -> Tuple[np.ndarray, np.ndarray]:
    """Turn points about their centre and frame them in a new camera.

    The points are rotated by ``angle_deg`` about the vertical (y) axis
    through the centre of their bounding box (90 degrees: seen from the
    camera's right, depth growing to the right), then pushed in front of a
    camera at three times their radius, whose focal length puts the
    farthest projected point at ``fill`` times the image's smaller side from
    the image centre.

    Args:
        vertices (np.ndarray): ``(N, 3)`` camera frame.
        image_size (tuple): ``(H, W)`` of the view.
        angle_deg (float): rotation about y, degrees.
        fill (float): half-extent of the framed points / min(H, W).

    Returns:
        tuple: ``(4, 4)`` transform applied to the points (homogeneous) and
        the ``(3, 3)`` intrinsics of the view.
    """
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    h, w = int(image_size[0]), int(image_size[1])
    centre = (v.min(0) + v.max(0)) / 2.0
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0],
                    [-math.sin(a), 0.0, math.cos(a)]])
    rel = (v - centre) @ rot.T
    radius = max(float(np.linalg.norm(rel, axis=1).max()), 1e-3)
    dist = 3.0 * radius
    # largest |x| / z or |y| / z of the moved points: frame it exactly
    spread = float((np.abs(rel[:, :2]) / (rel[:, 2:] + dist)).max())
    focal = fill * min(h, w) / max(spread, 1e-6)
    transform = np.eye(4)
    transform[:3, :3] = rot
    transform[:3, 3] = -rot @ centre + np.array([0.0, 0.0, dist])
    k = np.array([[focal, 0.0, (w - 1) / 2.0], [0.0, focal, (h - 1) / 2.0],
                  [0.0, 0.0, 1.0]])
    return transform, k


def penetrating_vertices(vertices: np.ndarray,
                         faces: np.ndarray) -> np.ndarray:
    """Which vertices of each hand lie inside the other hand.

    The inside test of the penetration metric
    (:func:`~mmhand2p.evaluation.functional.winding_numbers` > 0.5 against
    the other hand's mesh with its wrist capped), evaluated only inside the
    other hand's bounding box.

    Args:
        vertices (np.ndarray): ``(2, V, 3)`` hands (0 right, 1 left), any
            common frame.
        faces (np.ndarray): ``(2, F, 3)`` (or ``(F, 3)``) open MANO faces.

    Returns:
        np.ndarray: ``(2, V)`` bool; all False for non-finite hands.
    """
    # imported here: mmhand2p.evaluation may import this package
    import torch

    from mmhand2p.geometry import MeshTopology, cap_holes, winding_numbers
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if f.ndim == 2:
        f = np.stack([f, f])
    out = np.zeros(v.shape[:2], bool)
    if not np.isfinite(v).all():
        return out
    for a, b in ((0, 1), (1, 0)):
        capped_v, capped_f = cap_holes(v[b], f[b])
        lo, hi = capped_v.min(0), capped_v.max(0)
        cand = np.nonzero(((v[a] >= lo) & (v[a] <= hi)).all(-1))[0]
        if len(cand) == 0:
            continue
        w = winding_numbers(
            torch.from_numpy(v[a][cand])[None],
            torch.from_numpy(capped_v)[None], MeshTopology(capped_f))[0]
        out[a, cand] = w.numpy() > 0.5
    return out


@VISUALIZERS.register_module()
class TwoHandLocalVisualizer(Visualizer):
    """Visualizer of two-hand reconstructions.

    Draws, on the image given to :meth:`add_datasample`, the predicted MANO
    meshes (right hand and left hand in two colours), the ground-truth 2D
    skeletons (thin lines) and the predicted ones (21 wrist-first joints),
    and puts a side view of the predicted meshes, rendered by the CPU
    renderer :func:`~mmhand2p.visualization.render_meshes` from a camera
    turned by ``side_view_angle`` about the hands' centre, to the right.

    Images are RGB (as mmengine's visualizers expect); files are written as
    usual image files (``mmcv.imwrite``).

    Args:
        name (str): instance name. Defaults to ``'visualizer'``.
        image (np.ndarray, optional): an image to start with.
        vis_backends (list[dict], optional): visual backends (e.g.
            ``LocalVisBackend``, ``TensorboardVisBackend``).
        save_dir (str, optional): where the backends save.
        faces (np.ndarray, optional): ``(F, 3)`` or ``(2, F, 3)`` (right,
            left) mesh faces. Default: read from the MANO files at
            ``mano_model_path``.
        mano_model_path (str, optional): the MANO folder the model uses (None:
            the bundled hand model). Its faces must match the predicted
            vertices: set it to your MANO folder when the model runs the real
            MANO.
        mesh_colors (sequence, optional): ``(2, 3)`` RGB in [0, 1] of the
            right / left meshes. Default: the renderer's skin tone and blue.
        mesh_alpha (float): opacity of the meshes over the image.
        pred_skeleton_colors (sequence): RGB 0-255 of the right / left
            predicted skeletons.
        gt_skeleton_colors (sequence): RGB 0-255 of the right / left
            ground-truth skeletons.
        line_width (int): skeleton line width in pixels (GT lines are one
            pixel thinner, at least 1).
        radius (int): joint radius in pixels.
        side_view (bool): add the side-view panel.
        side_view_angle (float): the side camera's rotation about the hands'
            vertical axis, degrees.
        side_view_background (sequence): RGB 0-255 of the side panel.
        supersample (int): anti-aliasing factor of the renderer.
        show_unrefined (bool): when the predictions carry the stage-1 hands
            of a refiner (``unrefined_vertices``), draw the before/after
            picture (stage 1 | refined, each with overlay and side view);
            False always draws the (refined) predictions alone.
        penetration_color (sequence): RGB 0-255 of the vertices that lie
            inside the other hand, in the before/after picture (None: not
            marked).
        before_after_titles (sequence): labels of the two halves of the
            before/after picture. Defaults to ``('stage 1', 'refined')``.
        box_colors (sequence, optional): ``(2, 3)`` RGB 0-255 of the right /
            left hand boxes of the whole-image panels (``panels`` of
            :meth:`add_datasample`). Default:
            :data:`~mmhand2p.visualization.image_panels.BOX_COLORS`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[Sequence[dict]] = None,
                 save_dir: Optional[str] = None,
                 faces: Optional[np.ndarray] = None,
                 mano_model_path: Optional[str] = None,
                 mesh_colors: Optional[Sequence] = None,
                 mesh_alpha: float = 1.0,
                 pred_skeleton_colors: Sequence = ((255, 96, 0), (0, 96, 255)),
                 gt_skeleton_colors: Sequence = ((0, 220, 0), (0, 220, 0)),
                 line_width: int = 2,
                 radius: int = 3,
                 side_view: bool = True,
                 side_view_angle: float = 90.0,
                 side_view_background: Sequence[int] = (255, 255, 255),
                 supersample: int = 1,
                 show_unrefined: bool = True,
                 penetration_color: Optional[Sequence[int]] = (225, 25, 25),
                 before_after_titles: Sequence[str] = ('stage 1', 'refined'),
                 box_colors: Optional[Sequence] = None) -> None:
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir)
        self._faces = None if faces is None else self._as_faces(faces)
        self.mano_model_path = mano_model_path
        colors = DEFAULT_MESH_COLORS[:2] if mesh_colors is None else \
            mesh_colors
        self.mesh_colors = np.asarray(colors, np.float64).reshape(2, 3)
        if not 0.0 <= mesh_alpha <= 1.0:
            raise ValueError(f'mesh_alpha must be in [0, 1], got {mesh_alpha}')
        self.mesh_alpha = float(mesh_alpha)
        self.pred_skeleton_colors = [
            tuple(int(c) for c in col) for col in pred_skeleton_colors
        ]
        self.gt_skeleton_colors = [
            tuple(int(c) for c in col) for col in gt_skeleton_colors
        ]
        self.line_width = int(line_width)
        self.radius = int(radius)
        self.side_view = side_view
        self.side_view_angle = float(side_view_angle)
        self.side_view_background = tuple(int(c) for c in side_view_background)
        self.supersample = int(supersample)
        self.show_unrefined = bool(show_unrefined)
        self.penetration_color = None if penetration_color is None else \
            tuple(int(c) for c in penetration_color)
        if len(before_after_titles) != 2:
            raise ValueError('before_after_titles must be two strings, got '
                             f'{before_after_titles!r}')
        self.before_after_titles = tuple(str(t) for t in before_after_titles)
        self.box_colors = [
            tuple(int(c) for c in col)
            for col in (BOX_COLORS if box_colors is None else box_colors)
        ]

    # ------------------------------------------------------------------
    @staticmethod
    def _as_faces(faces) -> np.ndarray:
        f = np.asarray(_np(faces), np.int64)
        if f.ndim == 2:
            f = np.stack([f, f])
        if f.ndim != 3 or f.shape[0] != 2 or f.shape[2] != 3:
            raise ValueError('faces must be (F, 3) or (2, F, 3) (right, left),'
                             f' got {f.shape}')
        return f

    @property
    def faces(self) -> np.ndarray:
        """``(2, F, 3)`` faces of the right / left meshes."""
        if self._faces is None:
            from mmhand2p.conventions import load_mano_file, resolve_mano_path
            self._faces = self._as_faces(
                np.stack([
                    np.asarray(
                        load_mano_file(
                            resolve_mano_path(
                                self.mano_model_path, is_rhand=side))['f'])
                    for side in (True, False)
                ]))
        return self._faces

    @faces.setter
    def faces(self, faces: Optional[np.ndarray]) -> None:
        """Set the faces the predicted vertices use (None: from
        ``mano_model_path`` again), e.g. the model's own
        (:func:`~mmhand2p.apis.mesh_faces`)."""
        self._faces = None if faces is None else self._as_faces(faces)

    @staticmethod
    def resolve_image_space(image_hw: Tuple[int, int],
                            metainfo: dict,
                            image_space: str = 'auto') -> str:
        """Decide whether an image is the network input or the original.

        ``'auto'``: the input when the image has the size of ``input_size``
        (``(w, h)``) or ``img_shape``, else the original image when it has
        the size of ``ori_shape``; the input when the metainfo gives no size;
        a ``ValueError`` when sizes are known and none matches. When the
        input and the original have the same size, ``'input'`` wins: pass
        ``image_space='original'`` to draw on an original image of the
        input's size.

        Args:
            image_hw (tuple): ``(H, W)`` of the image.
            metainfo (dict): the sample's metainfo.
            image_space (str): ``'auto'``, ``'input'`` or ``'original'``.

        Returns:
            str: ``'input'`` or ``'original'``.
        """
        if image_space not in _IMAGE_SPACES:
            raise ValueError(f'image_space must be one of {_IMAGE_SPACES}, '
                             f'got {image_space!r}')
        if image_space != 'auto':
            return image_space
        hw = tuple(int(s) for s in image_hw[:2])
        input_size = metainfo.get('input_size')
        img_shape = metainfo.get('img_shape')
        ori_shape = metainfo.get('ori_shape')
        inp = None
        if input_size is not None:
            inp = (int(input_size[1]), int(input_size[0]))
        elif img_shape is not None:
            inp = tuple(int(s) for s in img_shape[:2])
        ori = None if ori_shape is None else tuple(
            int(s) for s in ori_shape[:2])
        if inp is not None and hw == inp:
            return 'input'
        if ori is not None and hw == ori:
            return 'original'
        if inp is None and ori is None:
            return 'input'
        raise ValueError(
            f'the image ({hw[0]} x {hw[1]}) is neither the network input '
            f'(h, w = {inp}) nor the original image (h, w = {ori}); pass '
            "image_space='input' or 'original'")

    # ------------------------------------------------------------------
    def _hands(self, instances, camera, pred: bool) -> Dict[str, np.ndarray]:
        """Per-hand arrays of ``instances`` in the drawing camera, hand axis
        in true handedness (0 right, 1 left)."""
        k, rot, back, swap = camera
        out = {}
        valid = _np(instances.get('hand_valid'))
        valid = np.ones(2, bool) if valid is None else valid.reshape(2) > 0
        verts = _np(instances.get('vertices'))
        if verts is not None:
            out['vertices'] = verts.reshape(2, -1, 3) @ rot.T
        j3d = _np(instances.get('joints_3d'))
        j2d = _np(instances.get('joints_2d'))
        if pred and j3d is not None:
            # projecting the 3D joints keeps them consistent with the mesh
            uv, front = project_to_image(j3d.reshape(2, 21, 3) @ rot.T, k)
            out['joints_2d'] = uv
            out['joints_2d_valid'] = front & np.isfinite(uv).all(-1)
        elif j2d is not None:
            j2d = j2d.reshape(2, 21, 2)
            out['joints_2d'] = j2d @ back[:, :2].T + back[:, 2]
            jv = _np(instances.get('joints_2d_valid'))
            jv = np.ones((2, 21), bool) if jv is None else \
                jv.reshape(2, 21) > 0
            out['joints_2d_valid'] = jv & np.isfinite(j2d).all(-1)
        if 'joints_2d_valid' in out:
            out['joints_2d_valid'] &= valid[:, None]
        out['hand_valid'] = valid
        if swap:
            out = {key: val[::-1].copy() for key, val in out.items()}
        return out

    def _draw_skeleton(self, canvas: np.ndarray, joints: np.ndarray,
                       valid: np.ndarray, colors, width: int,
                       radius: int) -> None:
        """Lines joint -> parent and joint dots (in place, RGB)."""
        from mmhand2p.conventions import SKELETON_PARENTS
        shift = 4
        scale = 1 << shift
        h, w = canvas.shape[:2]
        lim = 4 * max(h, w)  # keep cv2's fixed-point coordinates in range
        for hand in range(2):
            color = colors[hand]
            pts = joints[hand]
            ok = valid[hand] & (np.abs(pts) < lim).all(-1)
            fixed = np.round(pts * scale).astype(np.int64)
            for j, parent in enumerate(SKELETON_PARENTS):
                if parent < 0 or not (ok[j] and ok[parent]):
                    continue
                cv2.line(canvas, tuple(int(c) for c in fixed[j]),
                         tuple(int(c) for c in fixed[parent]), color, width,
                         cv2.LINE_AA, shift)
            for j in np.nonzero(ok)[0]:
                cv2.circle(canvas, tuple(int(c) for c in fixed[j]),
                           radius * scale, color, -1, cv2.LINE_AA, shift)

    def _tint(self, out, keep: Sequence[int],
              inside: Optional[np.ndarray]) -> np.ndarray:
        """``out.image`` with the faces that touch an inside vertex drawn in
        ``penetration_color`` (shading kept)."""
        img = out.image
        if inside is None or self.penetration_color is None:
            return img
        img = img.copy()
        faces = self.faces
        for m, hand in enumerate(keep):
            pen_faces = inside[hand][faces[hand]].any(-1)
            if not pen_faces.any():
                continue
            hit = (out.mesh_id == m) & (out.face_id >= 0)
            hit[hit] = pen_faces[out.face_id[hit]]
            if not hit.any():
                continue
            base = self.mesh_colors[hand] * 255.0
            c = int(np.argmax(base))
            shade = img[hit][:, c].astype(np.float64) / max(base[c], 1.0)
            color = np.asarray(self.penetration_color, np.float64)
            img[hit] = np.clip(np.round(shade[:, None] * color), 0,
                               255).astype(np.uint8)
        return img

    def _render_overlay(self,
                        image: np.ndarray,
                        hands: Dict[str, np.ndarray],
                        k: np.ndarray,
                        inside: Optional[np.ndarray] = None) -> np.ndarray:
        verts = hands.get('vertices')
        if verts is None:
            return image
        faces = self.faces
        if faces.max() >= verts.shape[1]:
            raise ValueError(
                f'the predicted meshes have {verts.shape[1]} vertices but the '
                f'faces index up to {faces.max()}: set the visualizer\'s '
                'mano_model_path / faces to the model the predictions use')
        keep = [
            i for i in range(2)
            if hands['hand_valid'][i] and np.isfinite(verts[i]).all()
        ]
        if not keep:
            return image
        out = render_meshes([verts[i] for i in keep], [faces[i] for i in keep],
                            k,
                            colors=self.mesh_colors[keep],
                            background=image,
                            supersample=self.supersample)
        rendered = self._tint(out, keep, inside)
        if self.mesh_alpha >= 1.0:
            return rendered
        hit = (out.mesh_id >= 0)[..., None]
        blend = (
            self.mesh_alpha * rendered.astype(np.float64) +
            (1.0 - self.mesh_alpha) * image.astype(np.float64))
        return np.where(hit, np.round(blend), image).astype(np.uint8)

    def _render_side_view(self,
                          hands: Optional[Dict[str, np.ndarray]],
                          size: Tuple[int, int],
                          frame: Optional[np.ndarray] = None,
                          inside: Optional[np.ndarray] = None,
                          title: Optional[str] = None) -> np.ndarray:
        """The side panel; ``frame`` ``(N, 3)``: points the camera frames
        (default: the drawn hands), ``inside``: ``(2, V)`` vertices to mark,
        ``title``: a caption prefix."""
        h, w = size
        panel = np.empty((h, w, 3), np.uint8)
        panel[:] = self.side_view_background
        verts = None if hands is None else hands.get('vertices')
        if verts is not None:
            keep = [
                i for i in range(2)
                if hands['hand_valid'][i] and np.isfinite(verts[i]).all()
            ]
            if keep:
                transform, k = side_view_camera(
                    np.concatenate([verts[i] for i in keep])
                    if frame is None else frame, (h, w),
                    self.side_view_angle)
                moved = [
                    verts[i] @ transform[:3, :3].T + transform[:3, 3]
                    for i in keep
                ]
                out = render_meshes(
                    moved, [self.faces[i] for i in keep],
                    k,
                    colors=self.mesh_colors[keep],
                    background=panel,
                    supersample=self.supersample)
                panel = self._tint(out, keep, inside)
        scale = max(min(h, w) / 512.0, 0.35)
        caption = f'side view ({self.side_view_angle:g} deg)'
        y = max(12, int(20 * scale))
        if title:  # the title on a line of its own, the caption below
            cv2.putText(panel, title, (4, y), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, (80, 80, 80), 1, cv2.LINE_AA)
            y += max(12, int(20 * scale))
        cv2.putText(panel, caption, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (80, 80, 80), 1, cv2.LINE_AA)
        return panel

    @staticmethod
    def _label(canvas: np.ndarray, lines: Sequence[str]) -> None:
        """White text with a dark outline, top left (in place)."""
        h, w = canvas.shape[:2]
        scale = max(min(h, w) / 400.0, 0.35)
        y = 2
        for text in lines:
            (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                            scale, 1)
            y += th + 2
            org = (4, y)
            cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
            y += base

    # ------------------------------------------------------------------
    def draw_sample(self,
                    image: np.ndarray,
                    data_sample,
                    draw_gt: bool = True,
                    draw_pred: bool = True,
                    image_space: str = 'auto',
                    draw_skeleton: bool = True,
                    draw_mesh: bool = True,
                    show_unrefined: Optional[bool] = None) -> np.ndarray:
        """Draw one sample and return the picture (no side effects).

        Args:
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB, the network input or
                the original image (see :meth:`resolve_image_space`).
            data_sample (HandDataSample): with ``pred_hands`` and / or
                ``gt_hands`` and the metainfo of the pipeline.
            draw_gt (bool): draw the ground-truth skeletons.
            draw_pred (bool): draw the predicted meshes, skeletons and the
                side view.
            image_space (str): ``'auto'``, ``'input'`` or ``'original'``.
            draw_skeleton (bool): draw the 2D skeletons.
            draw_mesh (bool): draw the mesh overlay.
            show_unrefined (bool, optional): draw the before/after picture
                when ``pred_hands`` has ``unrefined_vertices``; None: the
                visualizer's ``show_unrefined``.

        Returns:
            np.ndarray: ``(H, W, 3)`` or, with the side view, ``(H, 2W, 3)``
            uint8 RGB; the before/after picture is twice as wide.
        """
        image = np.ascontiguousarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        meta = data_sample.metainfo
        space = self.resolve_image_space(image.shape[:2], meta, image_space)
        camera = drawing_camera(meta, space)
        k = camera[0]
        pred = gt = None
        if draw_pred and 'pred_hands' in data_sample:
            pred = self._hands(data_sample.pred_hands, camera, pred=True)
        if draw_gt and 'gt_hands' in data_sample:
            gt = self._hands(data_sample.gt_hands, camera, pred=False)
        if show_unrefined is None:
            show_unrefined = self.show_unrefined
        if (show_unrefined and pred is not None
                and 'unrefined_vertices' in data_sample.pred_hands):
            return self._draw_before_after(image, data_sample.pred_hands,
                                           pred, gt, camera, draw_skeleton,
                                           draw_mesh)

        canvas = image.copy()
        if pred is not None and draw_mesh:
            canvas = self._render_overlay(canvas, pred, k)
        canvas = np.ascontiguousarray(canvas)
        base = max(1, self.line_width)
        if draw_skeleton:
            if gt is not None and 'joints_2d' in gt:
                self._draw_skeleton(canvas, gt['joints_2d'],
                                    gt['joints_2d_valid'],
                                    self.gt_skeleton_colors, max(1, base - 1),
                                    max(1, self.radius - 1))
            if pred is not None and 'joints_2d' in pred:
                self._draw_skeleton(canvas, pred['joints_2d'],
                                    pred['joints_2d_valid'],
                                    self.pred_skeleton_colors, base,
                                    max(1, self.radius))
        if not self.side_view:
            return canvas
        side = self._render_side_view(pred, canvas.shape[:2])
        return np.concatenate([canvas, side], axis=1)

    def _draw_before_after(self, image: np.ndarray, instances, refined: Dict,
                           gt: Optional[Dict], camera, draw_skeleton: bool,
                           draw_mesh: bool) -> np.ndarray:
        """``[stage 1: overlay | side][refined: overlay | side]``."""
        stage1_inst = dict(
            vertices=instances.get('unrefined_vertices'),
            joints_3d=instances.get('unrefined_joints_3d'),
            hand_valid=instances.get('hand_valid'))
        stage1 = self._hands(stage1_inst, camera, pred=True)
        k = camera[0]
        was_refined = instances.metainfo.get('refined') \
            if hasattr(instances, 'metainfo') else None
        before, title = self.before_after_titles
        if was_refined is False:
            title = f'{title} (gate closed: unchanged)'
        both = [
            h['vertices'][i] for h in (stage1, refined) if 'vertices' in h
            for i in range(2)
            if h['hand_valid'][i] and np.isfinite(h['vertices'][i]).all()
        ]
        frame = np.concatenate(both) if both else None
        panels = []
        base = max(1, self.line_width)
        for name, short, hands in ((before, before, stage1),
                                   (title, self.before_after_titles[1],
                                    refined)):
            inside = None
            lines = [name]
            if 'vertices' in hands and self.penetration_color is not None:
                inside = penetrating_vertices(hands['vertices'], self.faces)
                inside &= hands['hand_valid'][:, None]
                lines.append(f'penetrating verts: {int(inside.sum())}')
            canvas = image.copy()
            if draw_mesh:
                canvas = self._render_overlay(canvas, hands, k, inside)
            canvas = np.ascontiguousarray(canvas)
            if draw_skeleton:
                if gt is not None and 'joints_2d' in gt:
                    self._draw_skeleton(canvas, gt['joints_2d'],
                                        gt['joints_2d_valid'],
                                        self.gt_skeleton_colors,
                                        max(1, base - 1),
                                        max(1, self.radius - 1))
                if 'joints_2d' in hands:
                    self._draw_skeleton(canvas, hands['joints_2d'],
                                        hands['joints_2d_valid'],
                                        self.pred_skeleton_colors, base,
                                        max(1, self.radius))
            self._label(canvas, lines)
            panels.append(canvas)
            if self.side_view:
                panels.append(
                    self._render_side_view(
                        hands, canvas.shape[:2], frame, inside,
                        title=short))
        return np.concatenate(panels, axis=1)

    def draw_image_panels(self,
                          image: np.ndarray,
                          data_sample,
                          panels: Sequence[str] = IMAGE_PANELS,
                          draw_pred: bool = True,
                          max_side: Optional[int] = None
                          ) -> Dict[str, np.ndarray]:
        """Draw a whole-image prediction as separate pictures (no side
        effects).

        Reads the hands through
        :func:`~mmhand2p.structures.hand_instances` (``pred_instances``, or
        ``pred_hands`` of a model that writes only those): ``vertices``,
        ``labels``, ``bboxes``, ``bbox_scores``; and the metainfo
        ``cam_intrinsics`` (the camera of ``image``).

        Args:
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB, the whole image the
                model saw.
            data_sample (HandDataSample): the model's output for it.
            panels (sequence of str): which pictures, of
                ``'overlay'`` (the meshes over the image, labelled hand
                boxes) and ``'side'`` (the meshes seen from the side,
                ``side_view_angle``; the size of the overlay).
            draw_pred (bool): False draws the image (and an empty side
                view) without the predictions.
            max_side (int, optional): the pictures are downscaled to fit
                this many pixels on their longer side; None: full size.

        Returns:
            dict: panel name -> ``(h, w, 3)`` uint8 RGB picture, in the order
            of ``panels``.
        """
        unknown = [p for p in panels if p not in IMAGE_PANELS]
        if unknown:
            raise ValueError(f'unknown panels {unknown}: choose from '
                             f'{IMAGE_PANELS}')
        image = np.ascontiguousarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        from mmhand2p.structures import hand_instances
        verts = bboxes = scores = None
        labels = np.zeros(0, np.int64)
        if draw_pred:
            inst, _ = hand_instances(data_sample)
            labels = np.asarray(_np(inst.get('labels')), np.int64).reshape(-1)
            verts = _np(inst.get('vertices'))
            bboxes = _np(inst.get('bboxes'))
            scores = _np(inst.get('bbox_scores'))
        k = data_sample.metainfo.get('cam_intrinsics')
        if verts is not None and len(labels) and k is None:
            raise KeyError('the data sample has no metainfo cam_intrinsics: '
                           'cannot draw its meshes over the image')
        k = np.eye(3) if k is None else _np(k).reshape(3, 3)
        overlay = draw_mesh_overlay(
            image,
            verts,
            labels,
            self.faces if verts is not None else None,
            k,
            bboxes,
            scores,
            max_side,
            mesh_colors=self.mesh_colors,
            box_colors=self.box_colors)
        out = {}
        for panel in panels:
            if panel == 'overlay':
                out[panel] = overlay
            else:
                out[panel] = draw_side_panel(
                    verts,
                    labels,
                    self.faces if verts is not None else None,
                    overlay.shape[:2],
                    self.side_view_angle,
                    self.side_view_background,
                    mesh_colors=self.mesh_colors)
        return out

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       image_space: str = 'auto',
                       panels: Optional[Sequence[str]] = None,
                       max_side: Optional[int] = None):
        """Draw a sample, then show it, write it to ``out_file`` or, without
        ``out_file``, send it to the visual backends (main process only, as
        in mmdet / mmpose: other ranks return None).

        Two kinds of picture: without ``panels``, one picture of a
        (dataset or whole-image) sample in the two-hand layout
        (:meth:`draw_sample`: overlay, skeletons, side view side by side);
        with ``panels``, the separate pictures of a whole-image prediction
        (:meth:`draw_image_panels`, what ``Hand2PInferencer`` writes), each
        shown as ``{name}_{panel}``, written to ``out_file`` with
        ``_{panel}`` before its extension, or sent to the backends as
        ``{name}_{panel}``.

        Args:
            name (str): image identifier (window title, backend tag).
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB, the network input
                (``cam_intrinsics`` applies) or the original image
                (``ori_cam_intrinsics`` and ``rot_z`` apply).
            data_sample (HandDataSample): the sample (predictions and / or
                ground truth).
            draw_gt (bool): draw the ground truth.
            draw_pred (bool): draw the predictions.
            show (bool): show the picture in a window.
            wait_time (float): seconds to show it (0: until a key press).
            out_file (str, optional): write the picture there (RGB -> file)
                instead of sending it to the backends.
            step (int): the backends' global step.
            image_space (str): ``'auto'``, ``'input'`` or ``'original'``.
            panels (sequence of str, optional): ``'overlay'`` and / or
                ``'side'``: draw the whole-image pictures instead (``image``
                is then the whole image; ``draw_gt`` and ``image_space`` do
                not apply).
            max_side (int, optional): with ``panels``: downscale the
                pictures to fit this many pixels on their longer side.

        Returns:
            np.ndarray | dict: the picture, ``(H, 2W, 3)`` uint8 RGB
            (``(H, W, 3)`` without the side view; twice as wide for a
            before/after picture, see :meth:`draw_sample`); with ``panels``
            a dict panel name -> picture.
        """
        if data_sample is None:
            raise ValueError('add_datasample needs a data_sample')
        if panels is not None:
            return self._add_panels(name, image, data_sample, tuple(panels),
                                    draw_pred, show, wait_time, out_file,
                                    step, max_side)
        drawn = self.draw_sample(
            image, data_sample, draw_gt, draw_pred, image_space=image_space)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            import mmcv
            if not mmcv.imwrite(drawn[..., ::-1], out_file):
                print_log(
                    f'TwoHandLocalVisualizer: could not write '
                    f'{out_file}',
                    logger='current',
                    level=logging.WARNING)
        else:
            self.add_image(name, drawn, step)
        return drawn

    def _add_panels(self, name: str, image: np.ndarray, data_sample,
                    panels: Tuple[str, ...], draw_pred: bool, show: bool,
                    wait_time: float, out_file: Optional[str], step: int,
                    max_side: Optional[int]) -> Dict[str, np.ndarray]:
        """``add_datasample`` with ``panels`` (see there)."""
        import os.path as osp
        drawn = self.draw_image_panels(
            image, data_sample, panels, draw_pred, max_side=max_side)
        for panel, picture in drawn.items():
            self.set_image(picture)
            tag = f'{name}_{panel}'
            if show:
                self.show(picture, win_name=tag, wait_time=wait_time)
            if out_file is not None:
                import mmcv
                root, ext = osp.splitext(out_file)
                path = f'{root}_{panel}{ext or ".jpg"}'
                if not mmcv.imwrite(picture[..., ::-1], path):
                    print_log(
                        f'TwoHandLocalVisualizer: could not write {path}',
                        logger='current',
                        level=logging.WARNING)
            else:
                self.add_image(tag, picture, step)
        return drawn
