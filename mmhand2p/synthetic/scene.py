# Copyright (c) mmhand2p contributors. All rights reserved.
"""Scene sampling of the synthetic two-hand set: the constants shared by its
modules, camera rigs, hand orientations, skin tones, the placement of the
second hand, contact and inside tests, and :func:`sample_hand_scene`
(world frame and conventions: :mod:`mmhand2p.synthetic.generator`)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'COCO_CATEGORIES', 'DEFAULT_HAND_TYPE_PROBS', 'FORWARD', 'GAP_MODES',
    'GENERATOR_VERSION', 'HAND_TYPES', 'OFFSET_MODES', 'OFFSET_MODE_PROBS',
    'PALM_JOINTS', 'PALM_MODES', 'PALM_MODE_PROBS', 'SEG_BACKGROUND',
    'SEG_LEFT', 'SEG_RIGHT', 'SKIN_TONES', 'SPLITS', 'TORSO_DEPTH', 'UP',
    'camera_name', 'capture_rig', 'count_inside', 'hand_contact',
    'hand_orientation', 'place_second_hand', 'sample_camera_rig',
    'sample_hand_orientations', 'sample_hand_scene', 'sample_skin_tones'
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
