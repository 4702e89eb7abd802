# Copyright (c) mmhand2p contributors. All rights reserved.
"""A synthetic two-hand dataset in InterHand2.6M's exact file format.

The real datasets cannot be downloaded everywhere, so this module renders one
with the package's own hand model (:class:`MANOLayer`) and CPU renderer
(:func:`render_meshes`), writing the annotation files of the InterHand2.6M
release with :class:`InterHandFormatWriter`; :class:`InterHand26MDataset`
reads the result like the real thing. ``docs/datasets.md`` describes what is
generated and how fast.

Layout written under ``out_dir`` (the release's, plus three extras)::

    images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}.jpg
    images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}_seg.png    # extra
    images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}_depth.png  # extra
    annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,
                                               MANO_NeuralAnnot}.json
    annotations/{split}/synthetic_{split}_frames.json              # extra
    annotations/{split}/hand_boxes_{split}_coco.json               # extra

* ``_seg.png``: uint8 per-pixel hand id, 0 background, 1 right, 2 left
  (:data:`SEG_RIGHT`, :data:`SEG_LEFT`), of the visible surface.
* ``_depth.png``: uint16 camera ``z`` of the visible surface in millimetres,
  0 on the background.
* ``synthetic_{split}_frames.json``: the generator's settings and, per frame,
  the scene facts the release does not have (penetration counts, the gap
  between the hands, the palm configuration...).
* ``hand_boxes_{split}_coco.json``: COCO detection annotations, one box per
  hand and image, categories ``1 = right_hand``, ``2 = left_hand``
  (:func:`write_coco_hand_boxes`, which also converts the real release).

World frame (mm for joints and camera positions, metres for MANO, like the
release): ``+y`` down; the virtual subject faces ``-z``, so the cameras sit
on the ``-z`` side and the subject's right hand is on the ``-x`` side; its
torso is ``TORSO_DEPTH`` behind the hands. MANO annotations are in the world
frame with the finger pose relative to ``hands_mean`` (NeuralAnnot), and the
world joints are exactly ``MANOLayer(flat_hand_mean=False)`` of those
parameters, so every file agrees with every other one.

Determinism: every frame draws from its own generator seeded by ``(seed,
split, frame)`` and every capture's camera rig from one seeded by ``(seed,
split, capture)``, and torch runs single-threaded while generating, so the
output does not depend on ``workers``.
"""
import math
import multiprocessing
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'SPLITS', 'HAND_TYPES', 'SEG_BACKGROUND', 'SEG_RIGHT', 'SEG_LEFT',
    'COCO_CATEGORIES', 'DEFAULT_HAND_TYPE_PROBS', 'GAP_MODES',
    'sample_camera_rig', 'hand_orientation', 'sample_hand_orientations',
    'sample_skin_tones', 'random_background', 'place_second_hand',
    'count_inside', 'hand_contact', 'sample_hand_scene', 'render_view',
    'extra_paths', 'load_extras', 'generate_synthetic_interhand',
    'write_coco_hand_boxes', 'coco_boxes_path'
]

GENERATOR_VERSION = 1
SPLITS = ('train', 'val', 'test')
#: InterHand2.6M's hand types (the ``hand_type`` field)
HAND_TYPES = ('interacting', 'right', 'left')
#: per-frame probabilities of the hand types (``interacting``, ``right``,
#: ``left``)
DEFAULT_HAND_TYPE_PROBS = (0.6, 0.2, 0.2)
SEG_BACKGROUND, SEG_RIGHT, SEG_LEFT = 0, 1, 2
#: COCO categories of the hand-box file (label = id - 1 = hand axis index)
COCO_CATEGORIES = (
    dict(id=1, name='right_hand', supercategory='hand'),
    dict(id=2, name='left_hand', supercategory='hand'),
)

#: world directions (``+y`` down, subject facing ``-z``)
FORWARD = np.array([0.0, 0.0, -1.0])
UP = np.array([0.0, -1.0, 0.0])
#: how far behind the hand centre the subject's torso plane is (metres)
TORSO_DEPTH = 0.25
#: wrist and the four MCPs (wrist-first order): the palm centre
PALM_JOINTS = (0, 5, 9, 13, 17)

#: gap between interacting hands: name -> (probability, range in metres).
#: Gaps from 15 mm up are smallest vertex-vertex distances; smaller ones are
#: distances along the approach direction back from the first contact, and
#: for ``penetrating`` the depth pushed past it (:func:`place_second_hand`)
GAP_MODES = {
    'penetrating': (0.12, (0.003, 0.012)),
    'contact': (0.33, (0.0, 0.003)),
    'close': (0.35, (0.003, 0.04)),
    'apart': (0.20, (0.04, 0.12)),
}
#: palm configurations (the palm faces the other hand, the cameras, down or
#: up) and their probabilities
PALM_MODES = ('facing', 'camera', 'down', 'up')
PALM_MODE_PROBS = (0.4, 0.25, 0.2, 0.15)
#: direction from the right to the left hand's palm centre
OFFSET_MODES = ('lateral', 'depth', 'vertical')
OFFSET_MODE_PROBS = (0.55, 0.25, 0.2)

#: RGB skin tones in [0, 1], light to dark (interpolated)
SKIN_TONES = np.array([
    [0.98, 0.84, 0.74],
    [0.94, 0.76, 0.64],
    [0.87, 0.66, 0.52],
    [0.76, 0.55, 0.41],
    [0.60, 0.42, 0.30],
    [0.45, 0.31, 0.22],
    [0.32, 0.22, 0.16],
])

_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}
_RNG_RIG, _RNG_FRAME = 0, 1


def _frame_rng(seed: int, split: str, frame: int) -> np.random.Generator:
    return np.random.default_rng(
        [int(seed), _SPLIT_CODE[split], _RNG_FRAME,
         int(frame)])


def _rig_rng(seed: int, split: str, capture: int) -> np.random.Generator:
    return np.random.default_rng(
        [int(seed), _SPLIT_CODE[split], _RNG_RIG,
         int(capture)])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """``(3,)`` axis-angle -> ``(3, 3)`` rotation matrix, float64
    (:func:`mmhand2p.utils.geometry.axis_angle_to_matrix`)."""
    import torch

    from mmhand2p.utils.geometry import axis_angle_to_matrix
    return axis_angle_to_matrix(
        torch.as_tensor(np.asarray(rotvec, np.float64).reshape(3))).numpy()


def _matrix_to_rotvec(rot: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation -> ``(3,)`` axis-angle, float64
    (:func:`mmhand2p.utils.geometry.matrix_to_axis_angle`)."""
    import torch

    from mmhand2p.utils.geometry import matrix_to_axis_angle
    return matrix_to_axis_angle(
        torch.as_tensor(np.asarray(rot, np.float64))).numpy().reshape(3)


def _image_hw(image_size) -> Tuple[int, int]:
    if np.ndim(image_size) == 0:
        return int(image_size), int(image_size)
    h, w = (int(v) for v in image_size)
    return h, w


# ---------------------------------------------------------------------------
# cameras
# ---------------------------------------------------------------------------
def sample_camera_rig(rng: np.random.Generator,
                      num_cams: int,
                      image_size: Tuple[int, int],
                      center_mm: Sequence[float] = (0.0, 0.0, 0.0),
                      distance_range: Tuple[float, float] = (400.0, 700.0),
                      focal_range: Tuple[float, float] = (1.2, 1.6),
                      azimuth_range: Tuple[float, float] = (-75.0, 75.0),
                      elevation_range: Tuple[float, float] = (-25.0, 50.0),
                      roll_std: float = 10.0,
                      aim_std_mm: float = 25.0) -> List[dict]:
    """Cameras around the subject's front, aimed at the hands.

    Each camera sits at ``distance`` mm from ``center_mm`` in a direction of
    the given azimuth (about the vertical axis, 0 = straight in front of the
    subject) and elevation (positive = above), looks at ``center_mm`` plus a
    small random offset, and is rolled about its optical axis.

    Args:
        rng (np.random.Generator): random generator.
        num_cams (int): number of cameras.
        image_size (tuple): ``(H, W)`` pixels.
        center_mm (sequence): the point the rig looks at, world mm.
        distance_range (tuple): camera distance, mm.
        focal_range (tuple): focal length in units of ``max(H, W)``.
        azimuth_range / elevation_range (tuple): degrees.
        roll_std (float): degrees.
        aim_std_mm (float): spread of the aim point, mm.

    Returns:
        list[dict]: per camera ``camrot`` ``(3, 3)`` world -> camera,
        ``campos`` ``(3,)`` mm, ``focal`` ``(fx, fy)``, ``princpt``
        ``(cx, cy)`` (pixels, integer = pixel centre), so that
        ``X_cam = camrot @ (X_world - campos)``.
    """
    h, w = image_size
    center = np.asarray(center_mm, np.float64)
    cams = []
    for _ in range(int(num_cams)):
        az = math.radians(rng.uniform(*azimuth_range))
        el = math.radians(rng.uniform(*elevation_range))
        dist = rng.uniform(*distance_range)
        direction = np.array([
            math.sin(az) * math.cos(el), -math.sin(el),
            -math.cos(az) * math.cos(el)
        ])
        campos = center + dist * direction
        target = center + rng.normal(0.0, aim_std_mm, 3)
        z = _unit(target - campos)
        x = _unit(np.cross([0.0, 1.0, 0.0], z))
        y = np.cross(z, x)
        rot = np.stack([x, y, z])
        roll = math.radians(rng.normal(0.0, roll_std))
        c, s = math.cos(roll), math.sin(roll)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot
        f = rng.uniform(*focal_range) * max(h, w)
        focal = (f, f * (1.0 + rng.normal(0.0, 0.004)))
        princpt = ((w - 1) / 2.0 + rng.normal(0.0, 0.02 * w),
                   (h - 1) / 2.0 + rng.normal(0.0, 0.02 * h))
        cams.append(
            dict(camrot=rot, campos=campos, focal=focal, princpt=princpt))
    return cams


def _world_to_cam(points_m: np.ndarray, cam: dict) -> np.ndarray:
    """World metres -> camera metres, ``(..., 3)``."""
    return (points_m * 1000.0 - cam['campos']) @ cam['camrot'].T / 1000.0


def _project(points_cam: np.ndarray, cam: dict) -> np.ndarray:
    z = np.maximum(points_cam[..., 2:3], 1e-9)
    return points_cam[..., :2] / z * np.asarray(cam['focal']) + np.asarray(
        cam['princpt'])


# ---------------------------------------------------------------------------
# hands
# ---------------------------------------------------------------------------
def hand_orientation(finger_dir: np.ndarray, palm_normal: np.ndarray,
                     is_right: bool) -> np.ndarray:
    """MANO global rotation that points the fingers along ``finger_dir`` and
    the palm towards ``palm_normal`` (world).

    In the MANO frame the right hand's fingers point along ``-x`` and its
    palm faces ``-y`` (``docs/hand_model.md``); the left hand is the mirror,
    fingers along ``+x``, palm ``-y``.

    Args:
        finger_dir (np.ndarray): ``(3,)``.
        palm_normal (np.ndarray): ``(3,)``, made orthogonal to
            ``finger_dir``.
        is_right (bool): right (True) or left hand.

    Returns:
        np.ndarray: ``(3, 3)`` rotation (columns: images of MANO's axes).
    """
    d = _unit(np.asarray(finger_dir, np.float64))
    n = np.asarray(palm_normal, np.float64)
    n = _unit(n - (n @ d) * d)
    x = -d if is_right else d
    y = -n
    return np.stack([x, y, np.cross(x, y)], axis=1)


def _sample_orientation(rng: np.random.Generator, is_right: bool,
                        palm_mode: str) -> np.ndarray:
    medial = np.array([1.0 if is_right else -1.0, 0.0, 0.0])
    elev = math.radians(rng.uniform(-30.0, 75.0))
    yaw = math.radians(rng.uniform(-20.0, 60.0))
    d = math.cos(elev) * (math.cos(yaw) * FORWARD +
                          math.sin(yaw) * medial) + math.sin(elev) * UP
    refs = dict(facing=medial, camera=FORWARD, down=-UP, up=UP)
    ref = refs[palm_mode]
    perp = ref - (ref @ d) * d
    if np.linalg.norm(perp) < 0.35:  # e.g. palm to the camera, fingers too
        for alt in (medial, -UP, FORWARD):
            perp = alt - (alt @ d) * d
            if np.linalg.norm(perp) >= 0.35:
                break
    n = _rodrigues(d * rng.normal(0.0, math.radians(25.0))) @ _unit(perp)
    rot = hand_orientation(d, n, is_right)
    noise = _rodrigues(rng.normal(0.0, math.radians(8.0), 3))
    return noise @ rot


def sample_hand_orientations(rng: np.random.Generator
                             ) -> Tuple[np.ndarray, List[str]]:
    """World rotations of both hands in plausible two-hand configurations.

    Fingers point forward to upward (elevation -30..75 deg) and somewhat
    towards the body's midline, as with both arms in front of the torso; the
    palms face each other, the cameras, down or up (probabilities
    :data:`PALM_MODE_PROBS`; both hands share the configuration 70% of the
    time), with about 25 deg of roll and 8 deg of overall noise.

    Returns:
        tuple: ``(2, 3, 3)`` rotations (0 right, 1 left) and the two palm
        configuration names.
    """
    modes = [PALM_MODES[rng.choice(len(PALM_MODES), p=PALM_MODE_PROBS)]]
    if rng.random() < 0.7:
        modes.append(modes[0])
    else:
        modes.append(PALM_MODES[rng.choice(len(PALM_MODES),
                                           p=PALM_MODE_PROBS)])
    rots = np.stack([
        _sample_orientation(rng, True, modes[0]),
        _sample_orientation(rng, False, modes[1])
    ])
    return rots, modes


def sample_skin_tones(rng: np.random.Generator) -> np.ndarray:
    """Two related skin colours (one subject, a little variation per hand).

    Returns:
        np.ndarray: ``(2, 3)`` RGB in [0, 1].
    """
    t = rng.uniform(0.0, len(SKIN_TONES) - 1.0)
    i = min(int(t), len(SKIN_TONES) - 2)
    base = SKIN_TONES[i] + (t - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    base = base * rng.uniform(0.9, 1.1) + rng.normal(0.0, 0.02, 3)
    tones = base[None] + rng.normal(0.0, 0.025, (2, 3))
    return np.clip(tones, 0.05, 1.0)


def _manifold(verts: np.ndarray, faces: np.ndarray):
    """A ``manifold3d.Manifold`` of a closed mesh given in metres (built in
    millimetres, where the library's tolerances suit hand-sized meshes)."""
    import manifold3d
    mesh = manifold3d.Manifold(
        manifold3d.Mesh(
            np.ascontiguousarray(verts * 1000.0, np.float32),
            np.ascontiguousarray(faces, np.uint32)))
    if mesh.status() != manifold3d.Error.NoError:
        raise ValueError(f'the capped hand mesh is not a closed manifold '
                         f'({mesh.status()})')
    return mesh


def _nearest_vertex_bound(verts: np.ndarray, faces: np.ndarray) -> float:
    """An upper bound of the distance from any surface point to the
    nearest vertex: the longest edge over sqrt(3)."""
    t = verts[faces]
    edges = np.linalg.norm(t - np.roll(t, 1, axis=1), axis=-1)
    return float(edges.max() / math.sqrt(3.0))


def place_second_hand(verts_a: np.ndarray,
                      faces_a: np.ndarray,
                      verts_b: np.ndarray,
                      faces_b: np.ndarray,
                      direction: np.ndarray,
                      gap: float,
                      push: float = 0.0,
                      contact_below: float = 0.015,
                      step: float = 0.003,
                      tol: float = 1e-4,
                      start: float = 0.4) -> float:
    """Where to put closed mesh ``b`` along ``direction`` from closed mesh
    ``a``: at clearance ``gap``, or ``push`` past the first contact.

    ``b + s * direction`` approaches ``a`` from far away (large ``s``):

    1. sphere tracing on a lower bound of the surface distance, the
       smallest vertex-vertex distance ``d(s)`` minus the meshes'
       nearest-vertex bounds (:func:`_nearest_vertex_bound`); ``d`` is
       1-Lipschitz in ``s``, so stepping by the bound never passes the
       first contact;
    2. for gaps of at least ``contact_below`` (no push), sphere tracing on
       ``d(s)`` itself down to ``d = gap``: the vertex distance
       over-estimates the surface distance by a few millimetres at most;
    3. otherwise the first contact ``s_c``, the smallest ``s`` at which the
       solids do not intersect (exact mesh boolean, ``manifold3d``), by steps
       of ``step`` and bisection to ``tol``; the result is ``s_c + gap -
       push`` (a clearance / depth measured along ``direction``).

    Args:
        verts_a, faces_a: ``(V, 3)``, ``(F, 3)`` the fixed closed mesh,
            metres.
        verts_b, faces_b: the moving closed mesh, placed where ``s = 0``
            puts it.
        direction (np.ndarray): ``(3,)``.
        gap (float): clearance (metres).
        push (float): depth past the first contact (interpenetration).
        contact_below (float): gaps below this use the contact search.
        step (float): step of the contact search.
        tol (float): precision of ``s``.
        start (float): first ``s`` tried (backed off if touching).

    Returns:
        float: ``s``.
    """
    from scipy.spatial import cKDTree
    tree = cKDTree(verts_a)
    u = _unit(np.asarray(direction, np.float64))
    slack = _nearest_vertex_bound(verts_a, faces_a) + _nearest_vertex_bound(
        verts_b, faces_b)

    def dist(s):
        return float(tree.query(verts_b + s * u, k=1)[0].min())

    def trace(s, target):
        d = dist(s)
        while d <= target + tol and s < 4.0:  # too close to start: back off
            s *= 1.5
            d = dist(s)
        for _ in range(1000):
            if d - target <= tol:
                break
            s -= d - target
            d = dist(s)
        return s

    if gap >= contact_below and push <= 0:
        return trace(float(start), gap)
    s = trace(float(start), slack)  # no contact yet
    man_a = _manifold(verts_a, faces_a)
    man_b = _manifold(verts_b, faces_b)

    def touching(s):
        moved = man_b.translate(list(s * 1000.0 * u))
        return (man_a ^ moved).volume() > 0.0

    while touching(s) and s < 4.0:
        s += step
    outside, inside = s, None
    for _ in range(int(0.3 / step)):
        s -= step
        if touching(s):
            inside = s
            break
        outside = s
    if inside is not None:
        while outside - inside > tol:
            mid = (outside + inside) / 2
            if touching(mid):
                inside = mid
            else:
                outside = mid
    return outside + gap - push


def hand_contact(verts_a: np.ndarray,
                 faces_a: np.ndarray,
                 verts_b: np.ndarray,
                 faces_b: np.ndarray,
                 search: float = 0.01) -> Dict[str, float]:
    """Contact facts of two closed meshes (metres).

    Returns:
        dict: ``min_gap_mm`` (surface distance, capped at ``search``; 0 when
        they intersect) and ``penetration_volume_cm3`` (volume of the
        intersection, exact mesh boolean).
    """
    man_a = _manifold(verts_a, faces_a)
    man_b = _manifold(verts_b, faces_b)
    gap = man_a.min_gap(man_b, search * 1000.0)
    vol = (man_a ^ man_b).volume() if gap <= 0.0 else 0.0
    return dict(
        min_gap_mm=round(float(gap), 3),
        penetration_volume_cm3=round(float(vol) / 1000.0, 4))


def count_inside(points: np.ndarray,
                 verts: np.ndarray,
                 faces: np.ndarray,
                 max_depth: float = 0.025,
                 chunk: int = 128) -> int:
    """How many ``points`` lie inside the closed mesh ``(verts, faces)``.

    Generalised winding number (> 0.5 inside) of the candidates only: points
    inside the mesh's bounding box and within ``max_depth`` of one of its
    vertices (a hand has no point deeper than about 2 cm below its surface,
    so with the default this prefilter only saves time).

    Args:
        points (np.ndarray): ``(P, 3)``.
        verts (np.ndarray): ``(V, 3)`` of a closed, outward-oriented mesh.
        faces (np.ndarray): ``(F, 3)``.
        max_depth (float): candidate distance to the nearest vertex, in the
            unit of the points (metres here).
        chunk (int): points per numpy batch (memory bound).
    """
    from scipy.spatial import cKDTree
    lo, hi = verts.min(0), verts.max(0)
    cand = points[((points >= lo) & (points <= hi)).all(1)]
    if len(cand):
        near, _ = cKDTree(verts).query(cand, k=1)
        cand = cand[near <= max_depth]
    import torch

    from mmhand2p.geometry import winding_numbers
    v = torch.as_tensor(np.asarray(verts, np.float64))[None]
    f = np.asarray(faces, np.int64)
    inside = 0
    for i in range(0, len(cand), chunk):
        q = torch.as_tensor(np.asarray(cand[i:i + chunk], np.float64))
        w = winding_numbers(q[None], v, f)[0]
        inside += int((w > 0.5).sum())
    return inside


def _cap(verts: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Append the wrist cap's centre (the centroid of the wrist loop)."""
    return np.concatenate([verts, verts[loop].mean(0, keepdims=True)])


def _mano(layer, pose: np.ndarray, betas: np.ndarray,
          transl: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``layer`` on one two-hand sample: ``(2, 778, 3)``, ``(2, 21, 3)``."""
    import torch
    with torch.no_grad():
        out = layer(
            pose=torch.as_tensor(pose, dtype=torch.float32)[None],
            betas=torch.as_tensor(betas, dtype=torch.float32)[None],
            transl=torch.as_tensor(transl, dtype=torch.float32)[None])
    return (out.vertices[0].double().numpy(), out.joints[0].double().numpy())


def sample_hand_scene(
        rng: np.random.Generator,
        layer,
        hand_caps: Sequence[Tuple[np.ndarray, np.ndarray]],
        center_m: Sequence[float] = (0.0, 0.0, 0.0),
        hand_type_probs: Sequence[float] = DEFAULT_HAND_TYPE_PROBS,
        gap_modes: Optional[Dict] = None,
        skeleton: Optional[Dict] = None) -> dict:
    """One frame's hands in the world frame (metres).

    Finger poses come from :func:`sample_finger_poses` (the left hand gets a
    mirrored sample), orientations from :func:`sample_hand_orientations`,
    shapes from ``N(0, 0.8)`` per subject plus ``N(0, 0.15)`` per hand. The
    left hand is placed relative to the right one along a lateral, depth or
    vertical direction at a gap drawn from ``gap_modes``
    (:func:`place_second_hand`; the mode named ``'penetrating'`` pushes past
    the first contact), and the contact is measured on the wrist-capped
    meshes (:func:`hand_contact`, and :func:`count_inside` when they
    intersect). The pair is then
    centred at ``center_m`` (plus 2 cm of noise) and moved in front of the
    virtual torso.

    Args:
        rng (np.random.Generator): random generator.
        layer (MANOLayer): built with ``flat_hand_mean=False`` (the
            parameters returned are NeuralAnnot-style).
        hand_caps (sequence): per hand ``(loop, faces)``: the wrist
            opening's vertex ids and the faces of the mesh capped with a fan
            to the loop's centroid (appended as the last vertex), as made by
            :func:`mmhand2p.geometry.cap_boundary_loops`.
        center_m (sequence): where the hands are, world metres.
        hand_type_probs (sequence): probabilities of :data:`HAND_TYPES`.
        gap_modes (dict, optional): :data:`GAP_MODES` by default.
        skeleton (dict, optional): :func:`hand_skeleton` (saves rebuilding).

    Returns:
        dict: ``hand_type``, ``present`` ``(2,)`` bool, ``pose`` ``(2, 16,
        3)`` (finger pose relative to ``hands_mean``), ``betas`` ``(2, 10)``,
        ``transl`` ``(2, 3)``, ``vertices`` ``(2, 778, 3)``, ``joints`` ``(2,
        21, 3)`` (world metres, from ``layer``), ``skin`` ``(2, 3)`` and
        ``meta`` (JSON-able scene facts).
    """
    from .hand_model import mirror_axis_angle_pose, sample_finger_poses
    gap_modes = GAP_MODES if gap_modes is None else gap_modes
    probs = np.asarray(hand_type_probs, np.float64)
    hand_type = HAND_TYPES[rng.choice(3, p=probs / probs.sum())]
    present = np.array([hand_type != 'left', hand_type != 'right'])

    fingers = sample_finger_poses(2, rng, skeleton)  # (2, 45) flat, right
    fingers[1] = mirror_axis_angle_pose(fingers[1])
    hands_mean = layer.hands_mean.double().numpy().reshape(2, 45)
    rots, palm_modes = sample_hand_orientations(rng)
    pose = np.zeros((2, 16, 3))
    pose[:, 0] = [_matrix_to_rotvec(r) for r in rots]
    pose[:, 1:] = (fingers - hands_mean).reshape(2, 15, 3)
    num_betas = layer.num_betas
    betas = (
        rng.normal(0.0, 0.8, num_betas)[None] +
        rng.normal(0.0, 0.15, (2, num_betas)))
    skin = sample_skin_tones(rng)

    verts0, joints0 = _mano(layer, pose, betas, np.zeros((2, 3)))
    palm = joints0[:, PALM_JOINTS].mean(1)  # (2, 3)
    center = np.asarray(center_m, np.float64) + rng.normal(0.0, 0.02, 3)
    transl = np.zeros((2, 3))
    meta = dict(palm_modes=palm_modes)
    if hand_type == 'interacting':
        names = list(gap_modes)
        p = np.array([gap_modes[k][0] for k in names])
        gap_mode = names[rng.choice(len(names), p=p / p.sum())]
        lo, hi = gap_modes[gap_mode][1]
        amount = rng.uniform(lo, hi)
        offset_mode = OFFSET_MODES[rng.choice(3, p=OFFSET_MODE_PROBS)]
        if offset_mode == 'lateral':  # left hand on the subject's left
            u = np.array([1.0, 0.0, 0.0]) + rng.normal(0.0, 0.35, 3)
        elif offset_mode == 'depth':
            u = np.array([0.0, 0.0, rng.choice([-1.0, 1.0])]) + rng.normal(
                0.0, 0.35, 3)
        else:
            u = np.array([0.0, rng.choice([-1.0, 1.0]), 0.0]) + rng.normal(
                0.0, 0.35, 3)
        u = _unit(u)
        a, b = (_cap(verts0[h] - palm[h], hand_caps[h][0]) for h in (0, 1))
        if gap_mode == 'penetrating':
            s = place_second_hand(
                a, hand_caps[0][1], b, hand_caps[1][1], u, 0.0, push=amount)
        else:
            s = place_second_hand(a, hand_caps[0][1], b, hand_caps[1][1], u,
                                  amount)
        # right palm at -s u / 2, left palm at +s u / 2 around the centre
        transl[0] = center - s * u / 2 - palm[0]
        transl[1] = center + s * u / 2 - palm[1]
        meta.update(
            gap_mode=gap_mode,
            offset_mode=offset_mode,
            gap_target_mm=round(amount * 1000.0, 3))
    else:
        h = 0 if hand_type == 'right' else 1
        transl[h] = center - palm[h]
    # keep the hands in front of the torso plane (z = centre + TORSO_DEPTH)
    zmax = max(
        (verts0[h, :, 2] + transl[h, 2]).max() for h in range(2) if present[h])
    limit = center_m[2] + TORSO_DEPTH - 0.01
    if zmax > limit:
        transl[:, 2] -= zmax - limit
    verts, joints = _mano(layer, pose, betas, transl)
    if hand_type == 'interacting':
        caps = [_cap(verts[h], hand_caps[h][0]) for h in range(2)]
        contact = hand_contact(caps[0], hand_caps[0][1], caps[1],
                               hand_caps[1][1])
        inside = [0, 0]
        if contact['penetration_volume_cm3'] > 0:
            inside = [
                count_inside(verts[0], caps[1], hand_caps[1][1]),
                count_inside(verts[1], caps[0], hand_caps[0][1])
            ]
        meta.update(
            contact,
            inside_vertices=inside,
            penetration=bool(contact['penetration_volume_cm3'] > 0))
    else:
        meta.update(
            min_gap_mm=None,
            penetration_volume_cm3=0.0,
            inside_vertices=[0, 0],
            penetration=False)
    for h in range(2):
        if not present[h]:
            pose[h] = 0.0
            betas[h] = 0.0
            transl[h] = 0.0
    return dict(
        hand_type=hand_type,
        present=present,
        pose=pose,
        betas=betas,
        transl=transl,
        vertices=verts,
        joints=joints,
        skin=skin,
        meta=meta)


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


# ---------------------------------------------------------------------------
# frames (one per worker task)
# ---------------------------------------------------------------------------
class _FrameMaker:
    """Per-process state: the MANO layer, capped faces, rigs by capture."""

    def __init__(self, job: dict) -> None:
        import torch

        from mmhand2p.geometry import boundary_loops, cap_boundary_loops
        from mmhand2p.models.body_models import MANOLayer
        from .hand_model import hand_skeleton
        torch.set_num_threads(1)
        self.job = job
        self.layer = MANOLayer(
            model_path=job['mano_model_path'], flat_hand_mean=False).eval()
        self.faces = self.layer.faces.numpy()  # (2, F, 3), outward
        self.caps = []
        for h, model in enumerate((self.layer.right, self.layer.left)):
            loops = boundary_loops(self.faces[h])
            if len(loops) != 1:
                raise ValueError(
                    f'the hand model {self.layer.paths[h]!r} has '
                    f'{len(loops)} boundary loops; the synthetic generator '
                    'needs one (the wrist opening) for its inside test')
            _, capped = cap_boundary_loops(model.v_template.numpy(),
                                           self.faces[h])
            self.caps.append((loops[0], capped))
        self.skeleton = hand_skeleton()
        self._rigs: Dict[int, List[dict]] = {}

    def rig(self, capture: int) -> List[dict]:
        if capture not in self._rigs:
            self._rigs[capture] = capture_rig(self.job, capture)
        return self._rigs[capture]

    def make(self, index: int) -> dict:
        job = self.job
        h, w = job['image_hw']
        capture = index // job['frames_per_capture']
        cams = self.rig(capture)
        rng = _frame_rng(job['seed'], job['split'], index)
        center = np.asarray(job['center_mm']) / 1000.0
        for attempt in range(50):
            scene = sample_hand_scene(
                rng,
                self.layer,
                self.caps,
                center_m=center,
                hand_type_probs=job['hand_type_probs'],
                gap_modes=job['gap_modes'],
                skeleton=self.skeleton)
            ok = True
            for cam in cams:
                for hnd in np.flatnonzero(scene['present']):
                    pc = _world_to_cam(scene['joints'][hnd], cam)
                    uv = _project(pc, cam)
                    inside = ((uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) &
                              (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1))
                    if pc[:, 2].min() < 0.15 or inside.mean() < 0.8:
                        ok = False
            if ok:
                break
        scene['meta']['attempts'] = attempt + 1
        return self._render_frame(index, capture, cams, scene, rng)

    def _render_frame(self, index, capture, cams, scene, rng) -> dict:
        from mmhand2p.conventions import hand21_to_interhand
        job = self.job
        h, w = job['image_hw']
        present = scene['present']
        seq = f'{capture:04d}_synthetic'
        # world lighting, seen by every camera of the frame
        light = _unit(UP * rng.uniform(0.3, 1.0) +
                      FORWARD * rng.uniform(0.2, 1.0) +
                      rng.normal(0.0, 0.6, 3))
        ambient = rng.uniform(0.25, 0.5)
        diffuse = rng.uniform(0.5, 0.8)
        hands = np.flatnonzero(present)
        views = []
        for k, cam in enumerate(cams):
            cam_name = camera_name(k)
            rel = osp.join(f'Capture{capture}', seq, f'cam{cam_name}',
                           f'image{index}.jpg')
            verts_cam = [
                _world_to_cam(scene['vertices'][i], cam) for i in hands
            ]
            bg = random_background(rng, h, w)
            gain = rng.uniform(0.85, 1.15)
            img, seg, depth = render_view(
                verts_cam, [self.faces[i] for i in hands],
                [SEG_RIGHT if i == 0 else SEG_LEFT for i in hands],
                cam, (h, w),
                np.clip(scene['skin'][hands] * gain, 0, 1),
                cam['camrot'] @ light,
                bg,
                ambient=ambient,
                diffuse=diffuse,
                noise_std=rng.uniform(0.0, 4.0),
                rng=rng)
            path = osp.join(job['tmp_root'], 'images', job['split'], rel)
            os.makedirs(osp.dirname(path), exist_ok=True)
            quality = int(rng.integers(85, 96))
            _imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            extras = extra_paths(path)
            _imwrite(extras['seg'], seg)
            _imwrite(extras['depth'], depth)
            uv = np.concatenate([_project(v, cam) for v in verts_cam])
            lo = np.clip(uv.min(0), 0, [w - 1, h - 1])
            hi = np.clip(uv.max(0), 0, [w - 1, h - 1])
            views.append(
                dict(
                    camera=cam_name,
                    file_name=rel.replace(os.sep, '/'),
                    bbox=[
                        float(lo[0]),
                        float(lo[1]),
                        float(hi[0] - lo[0]),
                        float(hi[1] - lo[1])
                    ],
                    hand_pixels=[
                        int((seg == SEG_RIGHT).sum()),
                        int((seg == SEG_LEFT).sum())
                    ]))
        import torch
        world_mm = hand21_to_interhand(
            torch.as_tensor(scene['joints'] * 1000.0)).numpy()
        valid = np.repeat(present.astype(np.int64), 21)
        world_mm = world_mm * valid[:, None]  # absent hand: zeros
        mano = {
            side: (dict(
                pose=scene['pose'][i].reshape(48).astype(np.float32),
                shape=scene['betas'][i].astype(np.float32),
                trans=scene['transl'][i].astype(np.float32))
                   if present[i] else None)
            for i, side in enumerate(('right', 'left'))
        }
        meta = dict(scene['meta'])
        meta['skin_rgb'] = np.round(scene['skin'], 4).tolist()
        return dict(
            index=index,
            capture=capture,
            seq=seq,
            hand_type=scene['hand_type'],
            world_mm=world_mm,
            joint_valid=valid,
            mano=mano,
            views=views,
            meta=meta)


def _imwrite(path: str, img: np.ndarray, params=None) -> None:
    ok = cv2.imwrite(path, img, params or [])
    if not ok:
        raise IOError(f'could not write {path!r}')


def camera_name(k: int) -> str:
    """InterHand2.6M-like camera names: ``'400000'``, ``'400001'``, ..."""
    return str(400000 + int(k))


def capture_rig(job: dict, capture: int) -> List[dict]:
    """The (deterministic) camera rig of one capture."""
    return sample_camera_rig(
        _rig_rng(job['seed'], job['split'], capture),
        job['num_cams'],
        job['image_hw'],
        center_mm=job['center_mm'])


_WORKER: Dict[str, _FrameMaker] = {}


def _init_worker(job: dict) -> None:
    _WORKER['maker'] = _FrameMaker(job)


def _run_chunk(indices: Sequence[int]) -> List[dict]:
    maker = _WORKER['maker']
    return [maker.make(i) for i in indices]


# ---------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(out_dir: str, split: str) -> None:
    prefix = f'.tmp_synthetic_{split}_'
    for name in os.listdir(out_dir):
        if not name.startswith(prefix):
            continue
        try:
            pid = int(name[len(prefix):].split('_')[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(osp.join(out_dir, name), ignore_errors=True)


def generate_synthetic_interhand(
        out_dir: str,
        split: str,
        num_frames: int,
        num_cams: int = 4,
        image_size: Union[int, Tuple[int, int]] = 256,
        seed: int = 0,
        workers: int = 0,
        frames_per_capture: int = 25,
        hand_type_probs: Sequence[float] = DEFAULT_HAND_TYPE_PROBS,
        gap_modes: Optional[Dict] = None,
        mano_model_path: Optional[str] = None,
        coco_boxes: bool = True,
        overwrite: bool = False,
        progress: Optional[Callable[[int, int], None]] = None,
        start_method: Optional[str] = None) -> dict:
    """Generate one split of the synthetic set (see the module docstring).

    The split is written into a temporary folder inside ``out_dir`` and
    moved into place at the end (images first, then annotations), so a run
    that fails or is interrupted leaves no half-written split: a split is
    complete when ``annotations/{split}`` exists.

    Args:
        out_dir (str): dataset root (``data_root`` of the dataset).
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        num_frames (int): time instants; each gives ``num_cams`` images.
        num_cams (int): cameras per capture.
        image_size (int | tuple): ``S`` (square) or ``(H, W)``.
        seed (int): the output is a function of ``(seed, split, frame)``.
        workers (int): processes (0 = this process).
        frames_per_capture (int): frames sharing one camera rig (a
            ``Capture``).
        hand_type_probs (sequence): probabilities of ``interacting``,
            ``right``, ``left``.
        gap_modes (dict, optional): interacting-hand gaps, see
            :data:`GAP_MODES`.
        mano_model_path (str, optional): MANO folder; None = the bundled
            model (the dataset must then be read with the same model).
        coco_boxes (bool): also write the COCO hand-box file
            (:func:`write_coco_hand_boxes`).
        overwrite (bool): replace an existing split (else
            ``FileExistsError``).
        progress (callable, optional): ``progress(done_frames, total)``.
        start_method (str, optional): multiprocessing start method (default
            ``'fork'`` where available).

    Returns:
        dict: ``num_frames``, ``num_images``, ``seconds``, ``frames_per_s``,
        ``images_per_s``, ``hand_types`` (counts), ``penetrating`` (frames)
        and ``files`` (the annotation paths).
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    if num_frames < 1 or num_cams < 1 or frames_per_capture < 1:
        raise ValueError('num_frames, num_cams and frames_per_capture must '
                         f'be >= 1, got {num_frames}, {num_cams}, '
                         f'{frames_per_capture}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    probs = np.asarray(hand_type_probs, np.float64)
    if probs.shape != (3, ) or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError('hand_type_probs must be 3 non-negative numbers '
                         '(interacting, right, left), got '
                         f'{hand_type_probs!r}')
    h, w = _image_hw(image_size)
    if min(h, w) < 16:
        raise ValueError(f'image_size too small: {(h, w)}')
    out_dir = osp.abspath(out_dir)
    final_img = osp.join(out_dir, 'images', split)
    final_ann = osp.join(out_dir, 'annotations', split)
    existing = [p for p in (final_img, final_ann) if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f'synthetic split {split!r} already exists at {existing} (pass '
            'overwrite=True / --overwrite to replace it)')
    os.makedirs(out_dir, exist_ok=True)
    _remove_stale_tmp(out_dir, split)
    tmp_root = tempfile.mkdtemp(
        prefix=f'.tmp_synthetic_{split}_{os.getpid()}_', dir=out_dir)
    job = dict(
        split=split,
        seed=int(seed),
        num_cams=int(num_cams),
        image_hw=(h, w),
        frames_per_capture=int(frames_per_capture),
        hand_type_probs=tuple(float(p) for p in probs / probs.sum()),
        gap_modes=gap_modes,
        mano_model_path=mano_model_path,
        center_mm=(0.0, 0.0, 0.0),
        tmp_root=tmp_root)
    t0 = time.time()
    try:
        records = _make_frames(job, int(num_frames), int(workers), progress,
                               start_method)
        files = _write_annotations(job, records)
        if coco_boxes:
            files['coco_boxes'] = write_coco_hand_boxes(
                tmp_root, split, mano_model_path=mano_model_path)
        _commit(tmp_root, out_dir, split)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    seconds = time.time() - t0
    files = {
        k: osp.join(out_dir, osp.relpath(v, tmp_root))
        for k, v in files.items()
    }
    num_images = sum(len(r['views']) for r in records)
    types = [r['hand_type'] for r in records]
    return dict(
        num_frames=len(records),
        num_images=num_images,
        seconds=seconds,
        frames_per_s=len(records) / seconds,
        images_per_s=num_images / seconds,
        hand_types={t: types.count(t)
                    for t in HAND_TYPES},
        penetrating=sum(bool(r['meta']['penetration']) for r in records),
        files=files)


def _make_frames(job: dict, num_frames: int, workers: int, progress,
                 start_method) -> List[dict]:
    import torch
    records: List[dict] = []
    if workers <= 0:
        threads = torch.get_num_threads()
        try:
            maker = _FrameMaker(job)
            for i in range(num_frames):
                records.append(maker.make(i))
                if progress is not None:
                    progress(i + 1, num_frames)
        finally:
            torch.set_num_threads(threads)
        return records
    chunk = max(1, min(8, num_frames // (workers * 8)))
    chunks = [
        list(range(i, min(i + chunk, num_frames)))
        for i in range(0, num_frames, chunk)
    ]
    if start_method is None:
        methods = multiprocessing.get_all_start_methods()
        start_method = 'fork' if 'fork' in methods else 'spawn'
    if start_method == 'fork':  # import once here, not in every worker
        import manifold3d  # noqa: F401
        import scipy.spatial  # noqa: F401
        import smplx  # noqa: F401

        import mmhand2p.models.body_models  # noqa: F401
        import mmhand2p.visualization  # noqa: F401
    ctx = multiprocessing.get_context(start_method)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(job, )) as pool:
        for out in pool.imap_unordered(_run_chunk, chunks):
            records.extend(out)
            if progress is not None:
                progress(len(records), num_frames)
    records.sort(key=lambda r: r['index'])
    return records


def _write_annotations(job: dict, records: List[dict]) -> Dict[str, str]:
    from mmhand2p.datasets.interhand_writer import (InterHandFormatWriter,
                                                    _atomic_json)
    split = job['split']
    h, w = job['image_hw']
    writer = InterHandFormatWriter(job['tmp_root'], split)
    for capture in sorted({r['capture'] for r in records}):
        for k, cam in enumerate(capture_rig(job, capture)):
            writer.add_camera(capture, camera_name(k), cam['camrot'],
                              cam['campos'], cam['focal'], cam['princpt'])
    img_id = 0
    frames_meta: Dict[str, Dict[str, dict]] = {}
    for r in records:
        writer.add_frame(r['capture'], r['index'], r['world_mm'],
                         r['joint_valid'], r['hand_type'], r['mano'])
        for v in r['views']:
            writer.add_image(img_id, r['capture'], r['seq'], v['camera'],
                             r['index'], v['file_name'], w, h, v['bbox'],
                             r['joint_valid'], r['hand_type'])
            img_id += 1
        frames_meta.setdefault(str(r['capture']), {})[str(r['index'])] = dict(
            r['meta'],
            hand_type=r['hand_type'],
            hand_pixels={v['camera']: v['hand_pixels']
                         for v in r['views']})
    files = writer.write()
    meta_path = osp.join(job['tmp_root'], 'annotations', split,
                         f'synthetic_{split}_frames.json')
    settings = {
        k: v
        for k, v in job.items() if k not in ('tmp_root', 'gap_modes')
    }
    settings['gap_modes'] = job['gap_modes'] or GAP_MODES
    settings['generator_version'] = GENERATOR_VERSION
    _atomic_json(meta_path, dict(settings=settings, frames=frames_meta))
    files['frames'] = meta_path
    return files


def _commit(tmp_root: str, out_dir: str, split: str) -> None:
    """Move the finished split into place: old split out of the way
    (annotations first), new images in, new annotations in (last)."""
    final_img = osp.join(out_dir, 'images', split)
    final_ann = osp.join(out_dir, 'annotations', split)
    old = osp.join(tmp_root, 'old')
    os.makedirs(old)
    if osp.exists(final_ann):
        os.replace(final_ann, osp.join(old, 'annotations'))
    if osp.exists(final_img):
        os.replace(final_img, osp.join(old, 'images'))
    os.makedirs(osp.dirname(final_img), exist_ok=True)
    os.makedirs(osp.dirname(final_ann), exist_ok=True)
    os.replace(osp.join(tmp_root, 'images', split), final_img)
    os.replace(osp.join(tmp_root, 'annotations', split), final_ann)
    shutil.rmtree(tmp_root, ignore_errors=True)


# ---------------------------------------------------------------------------
# COCO hand boxes (for an mmdet hand detector)
# ---------------------------------------------------------------------------
def coco_boxes_path(data_root: str, split: str) -> str:
    """Default path of the COCO hand-box file of a split."""
    return osp.join(data_root, 'annotations', split,
                    f'hand_boxes_{split}_coco.json')


def write_coco_hand_boxes(data_root: str,
                          split: str,
                          out_file: Optional[str] = None,
                          mano_model_path: Optional[str] = None,
                          joints_expand: float = 1.2,
                          min_size: float = 2.0,
                          min_inside: float = 0.2,
                          batch_size: int = 64) -> str:
    """COCO detection annotations with one box per present hand per image.

    Works on any set in InterHand2.6M's format (the synthetic one or the
    real release): a hand with a MANO annotation gets the box of its
    projected MANO vertices (the full, amodal hand), one without gets the
    box of its valid projected joints enlarged by ``joints_expand``. Boxes
    are clipped to the image and use COCO's pixel convention (the image
    spans ``[0, W] x [0, H]``, pixel centres at ``+0.5``), i.e. they are the
    projected extent shifted by ``+0.5`` (mmhand2p's convention puts pixel
    centres at integers). A hand is left out when its clipped box is
    smaller than ``min_size`` px or keeps less than ``min_inside`` of its
    unclipped area.

    Categories: ``1 = right_hand``, ``2 = left_hand`` (:data:`COCO_CATEGORIES`;
    an mmdet config with ``classes=('right_hand', 'left_hand')`` gets labels
    0 = right, 1 = left, the hand axis). Image ids and ``file_name``
    (relative to ``images/{split}``) are those of the split's ``data.json``.

    Args:
        data_root (str): dataset root.
        split (str): split.
        out_file (str, optional): default :func:`coco_boxes_path`.
        mano_model_path (str, optional): MANO model of the annotations
            (None = bundled).
        joints_expand (float): box enlargement of joint-only hands.
        min_size (float): smallest kept box side, px.
        min_inside (float): smallest kept fraction of the box in the image.
        batch_size (int): MANO batch size.

    Returns:
        str: the written file.
    """
    import torch

    from mmhand2p.datasets.interhand26m import InterHand26MDataset
    from mmhand2p.datasets.interhand_writer import _atomic_json
    from mmhand2p.models.body_models import MANOLayer
    ds = InterHand26MDataset(
        data_root=data_root,
        split=split,
        mano_model_path=mano_model_path,
        index_cache_dir=None,
        test_mode=True)
    layer = MANOLayer(model_path=mano_model_path).eval()
    img_root = ds.data_prefix['img']
    images, anns = [], []
    for start in range(0, len(ds), batch_size):
        infos = [
            ds.get_data_info(i)
            for i in range(start, min(start + batch_size, len(ds)))
        ]
        with torch.no_grad():
            verts = layer(
                pose=torch.as_tensor(
                    np.stack([i['mano_pose'] for i in infos])),
                betas=torch.as_tensor(
                    np.stack([i['mano_betas'] for i in infos])),
                transl=torch.as_tensor(
                    np.stack([i['mano_transl']
                              for i in infos]))).vertices.double().numpy()
        for info, vb in zip(infos, verts):
            h, w = info['ori_shape']
            images.append(
                dict(
                    id=info['img_id'],
                    file_name=osp.relpath(info['img_path'],
                                          img_root).replace(os.sep, '/'),
                    width=int(w),
                    height=int(h)))
            k = info['cam_intrinsics'].astype(np.float64)
            for hnd in range(2):
                if not info['hand_valid'][hnd]:
                    continue
                if info['mano_valid'][hnd]:
                    v = vb[hnd]
                    if v[:, 2].min() <= 1e-3:
                        continue
                    uv = v[:, :2] / v[:, 2:] * k[[0, 1], [0, 1]] + k[:2, 2]
                    lo, hi = uv.min(0), uv.max(0)
                else:
                    m = info['joints_2d_valid'][hnd] > 0
                    if not m.any():
                        continue
                    uv = info['joints_2d'][hnd][m].astype(np.float64)
                    c = (uv.min(0) + uv.max(0)) / 2
                    half = (uv.max(0) - uv.min(0)) / 2 * joints_expand
                    lo, hi = c - half, c + half
                lo, hi = lo + 0.5, hi + 0.5  # COCO pixel convention
                full = float(np.prod(np.maximum(hi - lo, 1e-6)))
                lo_c = np.clip(lo, 0, [w, h])
                hi_c = np.clip(hi, 0, [w, h])
                bw, bh = hi_c - lo_c
                if min(bw, bh) < min_size or bw * bh < min_inside * full:
                    continue
                anns.append(
                    dict(
                        id=len(anns) + 1,
                        image_id=info['img_id'],
                        category_id=hnd + 1,
                        bbox=[
                            float(lo_c[0]),
                            float(lo_c[1]),
                            float(bw),
                            float(bh)
                        ],
                        area=float(bw * bh),
                        iscrowd=0))
    out_file = out_file or coco_boxes_path(data_root, split)
    _atomic_json(
        out_file,
        dict(
            info=dict(
                description=f'hand boxes of the {split} split (category id '
                '1 = right_hand, 2 = left_hand; COCO pixel convention)'),
            images=images,
            annotations=anns,
            categories=[dict(c) for c in COCO_CATEGORIES]))
    return out_file
