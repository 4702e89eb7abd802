# Copyright (c) mmhand2p contributors. All rights reserved.
"""A procedurally generated hand model in MANO's exact file format.

The real MANO model (Romero et al., SIGGRAPH Asia 2017) is licensed and cannot
be shipped, so mmhand2p ships a hand model that is *generated* by the pure
numpy functions of this module: same keys, shapes, joint order, kinematic
tree, vertex / face counts (778 / 1538), wrist opening (one boundary loop of
16 vertices) and fingertip vertex ids (thumb 745, index 317, middle 444, ring
556, little 673) as ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``. It is NOT the real
MANO model: its surface, skinning weights, shape space and pose prior are made
up (plausible adult dimensions), so it serves synthetic data, tests and demos;
networks meant for real photographs need the real licensed files.

Canonical frame of the right hand (as MANO's): metres, fingers along ``-x``
from the wrist, palm facing ``-y``, thumb on the ``+z`` side, the wrist
opening at ``+x``. The left hand is the exact mirror image through
``x -> -x``.

Construction (:func:`build_hand_model`):

1. :func:`hand_skeleton` - joint positions, finger frames and radii.
2. :func:`control_cage` - a coarse genus-0 quad cage: a palm box (4 finger
   columns x 2 layers) with a wrist hole and 5 extruded finger tubes.
3. :func:`catmull_clark` - one subdivision step (finger rings of 12).
4. :func:`fit_surface` - finger tube vertices are placed on their parametric
   tubes; palm, webs and fingertips are relaxed (tangential Laplacian) and
   projected onto the implicit surface :func:`hand_implicit` (a smooth union
   of a rounded palm slab, thenar / hypothenar pads and elliptic finger
   tubes).
5. Triangulation, longest-edge splits up to exactly 778 vertices, and a vertex
   permutation that puts the fingertips at MANO's ids.
6. :func:`joint_regressor`, :func:`skinning_weights`, :func:`shape_blend_dirs`
   and the pose PCA of :func:`sample_finger_poses`.

Everything is deterministic: the same ``seed`` gives byte-identical arrays
(the seed only drives the pose prior samples behind the PCA basis).
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from mmhand2p.conventions import MANO_FINGERTIP_VERTEX_IDS, MANO_PARENTS
from mmhand2p.geometry import winding_numbers
from mmhand2p.geometry.mesh import (boundary_loops, cap_boundary_loops,
                                    edge_face_counts, signed_volume)
from mmhand2p.utils.geometry import axis_angle_to_matrix, mirror_axis_angle

__all__ = [
    'NUM_VERTICES', 'NUM_FACES', 'NUM_JOINTS', 'WRIST_LOOP_SIZE',
    'MANO_KINTREE_PARENTS', 'FINGER_NAMES', 'FINGER_JOINTS',
    'FINGERTIP_VERTEX_IDS', 'hand_skeleton', 'hand_implicit', 'control_cage',
    'catmull_clark', 'fit_surface', 'hand_template_mesh', 'joint_regressor',
    'skinning_weights', 'shape_blend_dirs', 'finger_joint_axes',
    'finger_pose_from_angles', 'SHAPE_DIRECTIONS', 'sample_finger_poses',
    'pose_pca', 'build_hand_model', 'mirror_hand_model',
    'mirror_axis_angle_pose', 'edge_face_counts', 'boundary_loops',
    'cap_boundary_loops', 'signed_volume', 'winding_number',
    'self_intersections', 'lbs_numpy'
]

NUM_VERTICES = 778
NUM_FACES = 1538
NUM_JOINTS = 16
WRIST_LOOP_SIZE = 16
NUM_BETAS = 10
NUM_POSE_SAMPLES = 1554

#: MANO kinematic tree (parent of each of the 16 joints, -1 for the wrist):
#: :data:`mmhand2p.conventions.MANO_PARENTS`
MANO_KINTREE_PARENTS = MANO_PARENTS

#: finger order used by the generator (cage columns go little -> index)
FINGER_NAMES = ('thumb', 'index', 'middle', 'ring', 'little')

#: MANO joint ids of each finger, proximal to distal
FINGER_JOINTS = {
    'thumb': (13, 14, 15),
    'index': (1, 2, 3),
    'middle': (4, 5, 6),
    'ring': (10, 11, 12),
    'little': (7, 8, 9),
}

#: MANO's fingertip vertex ids (the 5 extra keypoints of the 21-joint hand)
#: by finger: :data:`mmhand2p.conventions.MANO_FINGERTIP_VERTEX_IDS`
FINGERTIP_VERTEX_IDS = dict(zip(FINGER_NAMES, MANO_FINGERTIP_VERTEX_IDS))

# --------------------------------------------------------------------------
# skeleton and implicit surface
# --------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _finger_frame(direction, dorsal_hint, lateral_hint):
    """Orthonormal (d, e_lat, e_dor) with e_lat pointing like lateral_hint."""
    d = _unit(direction)
    e_dor = np.asarray(dorsal_hint, np.float64)
    e_dor = _unit(e_dor - d * (e_dor @ d))
    e_lat = np.cross(e_dor, d)
    if e_lat @ np.asarray(lateral_hint, np.float64) < 0:
        e_lat = -e_lat
    return d, e_lat, e_dor


def hand_skeleton() -> Dict:
    """Design of the right hand: joints, finger tubes and palm parameters.

    Every finger (thumb included) is straight in the rest pose: its joints
    lie on one axis ``origin + s * d`` (``s`` in metres from its first joint).

    Returns:
        dict: ``joints`` ``(16, 3)`` designed joint centres (MANO order);
        ``fingers``: name -> dict with ``origin`` ``(3,)`` (MCP, or CMC for the
        thumb), ``d`` / ``e_lat`` / ``e_dor`` ``(3,)`` axis, lateral (the
        cage's "radial" side) and dorsal directions, ``joint_s`` ``(4,)`` arc
        positions of the 3 joints and the tip, ``knots`` / ``rad_lat`` /
        ``rad_dor`` ``(K,)`` the elliptic cross-section radii along ``s``,
        ``tip_len`` the axial semi-axis of the fingertip cap, ``tip_c`` where
        the cap starts, ``ring_s`` ``(2K - 1,)`` the arc positions of the
        rings ``t = 1, 1.5, ..., K`` of the subdivided finger tube;
        ``palm``: parameters of the palm slab; ``wrist_x`` the wrist cut
        plane and ``wrist_zc`` the centre of the wrist section in z.
        Lengths in metres.
    """
    sk: Dict = {}
    wrist = np.array([0.0900, 0.0000, 0.0000])
    fingers = {}

    def finger(name,
               mcp,
               angle_deg,
               lengths,
               rl,
               rd,
               tip_len,
               dorsal=(0.0, 1.0, 0.0),
               lateral=(0.0, 0.0, 1.0),
               direction=None):
        if direction is None:
            a = np.deg2rad(angle_deg)
            direction = (-np.cos(a), 0.0, np.sin(a))
        d, e_lat, e_dor = _finger_frame(direction, dorsal, lateral)
        js = np.concatenate([[0.0], np.cumsum(lengths)])
        fingers[name] = dict(
            origin=np.asarray(mcp, np.float64),
            d=d,
            e_lat=e_lat,
            e_dor=e_dor,
            joint_s=js,
            rad_lat=np.asarray(rl, np.float64),
            rad_dor=np.asarray(rd, np.float64),
            tip_len=float(tip_len))

    # Long fingers: MCP position, spread angle (degrees towards the thumb),
    # phalanx lengths (MCP-PIP, PIP-DIP, DIP-tip), lateral and dorsal
    # radii at the knots (MCP - 8 mm, MCP, mid proximal phalanx, PIP, mid
    # middle phalanx, DIP, mid distal phalanx, start of the tip cap) and the
    # axial semi-axis of the fingertip cap.
    finger('index', (0.0030, 0.0000, 0.0240), 6.0, (0.041, 0.024, 0.021),
           (0.0098, 0.0098, 0.0090, 0.0092, 0.0083, 0.0084, 0.0078, 0.0077),
           (0.0092, 0.0090, 0.0080, 0.0082, 0.0073, 0.0073, 0.0067, 0.0064),
           0.0068)
    finger('middle', (0.0000, 0.0000, 0.0020), 1.0, (0.045, 0.028, 0.022),
           (0.0101, 0.0101, 0.0092, 0.0095, 0.0086, 0.0087, 0.0080, 0.0079),
           (0.0094, 0.0092, 0.0082, 0.0084, 0.0075, 0.0075, 0.0069, 0.0066),
           0.0070)
    finger('ring', (0.0040, 0.0000, -0.0190), -5.0, (0.042, 0.027, 0.022),
           (0.0096, 0.0096, 0.0087, 0.0090, 0.0082, 0.0083, 0.0076, 0.0075),
           (0.0090, 0.0088, 0.0079, 0.0081, 0.0072, 0.0071, 0.0066, 0.0063),
           0.0068)
    finger('little', (0.0130, 0.0000, -0.0375), -12.0, (0.033, 0.020, 0.020),
           (0.0086, 0.0086, 0.0078, 0.0080, 0.0072, 0.0073, 0.0068, 0.0066),
           (0.0082, 0.0080, 0.0071, 0.0073, 0.0065, 0.0064, 0.0059, 0.0056),
           0.0062)
    # thumb: CMC deep in the thenar, straight chain CMC -> MCP -> IP -> tip
    # (radii at CMC, +10 mm, +24 mm, MCP, mid, IP, mid, start of the cap);
    # its nail faces mostly radially (+z) and a bit dorsally
    thumb_dir = _unit((-0.84, -0.22, 0.50))
    finger(
        'thumb', (0.0700, -0.0080, 0.0180),
        0.0, (0.042, 0.032, 0.028),
        (0.0150, 0.0135, 0.0115, 0.0112, 0.0104, 0.0104, 0.0094, 0.0090),
        (0.0135, 0.0120, 0.0102, 0.0100, 0.0092, 0.0090, 0.0082, 0.0078),
        0.0082,
        dorsal=(0.0, 0.55, 0.85),
        lateral=(-1.0, 0.0, 0.0),
        direction=thumb_dir)

    for name, f in fingers.items():
        js = f['joint_s']
        tip_c = js[3] - f['tip_len']
        if name == 'thumb':
            f['knots'] = np.array([
                0.0, 0.010, 0.024, js[1], 0.5 * (js[1] + js[2]), js[2],
                0.5 * (js[2] + tip_c), tip_c
            ])
        else:
            f['knots'] = np.array([
                -0.008, 0.0, 0.5 * js[1], js[1], 0.5 * (js[1] + js[2]), js[2],
                0.5 * (js[2] + tip_c), tip_c
            ])
        f['tip_c'] = tip_c
    # ring stations along each finger for t = 1, 1.5, ..., K (the cage has
    # the integer rings, subdivision adds the half ones): rings exactly at
    # PIP / DIP (thumb: MCP / IP), one where the fingertip cap starts and
    # one half-way into the cap
    for name, f in fingers.items():
        js = f['joint_s']
        tc, cap = f['tip_c'], f['tip_c'] + 0.5 * f['tip_len']
        if name == 'thumb':
            st = [0.026, 0.034, js[1], 0.5 * (js[1] + js[2]), js[2], tc, cap]
        elif name == 'little':
            st = [
                0.016, 0.5 * (0.016 + js[1]), js[1], 0.5 * (js[1] + js[2]),
                js[2], tc, cap
            ]
        else:
            dl = (js[2] - js[1]) / 3.0
            st = [
                0.018, 0.5 * (0.018 + js[1] - dl), js[1] - dl, js[1],
                js[1] + dl, js[1] + 2 * dl, js[2], tc, cap
            ]
        f['ring_s'] = np.array(st)

    joints = np.zeros((NUM_JOINTS, 3))
    joints[0] = wrist
    for name, ids in FINGER_JOINTS.items():
        f = fingers[name]
        for k, j in enumerate(ids):
            joints[j] = f['origin'] + f['joint_s'][k] * f['d']
    sk['joints'] = joints
    sk['fingers'] = fingers
    sk['wrist_x'] = 0.1020
    sk['wrist_zc'] = -0.0030
    # palm slab: a convex polygon in the (x, z) plane (from the wrist along
    # the radial side, the finger webs, back along the ulnar side), extruded
    # to half thickness h(x) with edges rounded by radius h; it reaches
    # about 1 cm past the knuckles, where it forms the webs between fingers
    sk['palm'] = dict(
        polygon=np.array([[0.140, 0.0265], [0.070, 0.0330], [0.004, 0.0335],
                          [-0.0105, 0.0130], [-0.0100, -0.0090],
                          [-0.0030, -0.0300], [0.0120, -0.0465],
                          [0.070, -0.0420], [0.140, -0.0285]]),
        h_x=np.array([-0.020, 0.000, 0.030, 0.070, 0.100, 0.140]),
        h=np.array([0.0055, 0.0100, 0.0130, 0.0150, 0.0172, 0.0180]),
    )
    return sk


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (blend radius ``k``)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _finger_field(p: np.ndarray, f: Dict, base_cap: bool = True) -> np.ndarray:
    """Approximate signed distance to one elliptic finger tube (N,)."""
    q = p - f['origin']
    s = q @ f['d']
    w = q @ f['e_lat']
    u = q @ f['e_dor']
    knots = f['knots']
    sc = np.clip(s, knots[0], f['tip_c'])
    a = np.interp(sc, knots, f['rad_lat'])
    b = np.interp(sc, knots, f['rad_dor'])
    ax = np.maximum(s - f['tip_c'], 0.0) / f['tip_len']
    if base_cap:
        ax = ax + np.maximum(knots[0] - s, 0.0) / (0.6 * a)
    r = np.sqrt((w / a)**2 + (u / b)**2 + ax**2)
    return (r - 1.0) * np.minimum(a, b)


def _palm_field(p: np.ndarray, palm: Dict) -> np.ndarray:
    """Approximate signed distance to the rounded palm slab (N,)."""
    poly = palm['polygon']
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    # signed distance to a convex polygon, max of the edge half-planes
    d2 = np.full(len(p), -np.inf)
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        e = b - a
        nrm = np.array([e[1], -e[0]]) / np.hypot(e[0], e[1])
        # (e_z, -e_x) is the outward normal with the polygon's ordering
        d2 = np.maximum(d2, (x - a[0]) * nrm[0] + (z - a[1]) * nrm[1])
    h = np.interp(x, palm['h_x'], palm['h'])
    qx = d2 + h
    qy = np.abs(y)
    out = np.sqrt(np.maximum(qx, 0)**2 + np.maximum(qy, 0)**2)
    return out + np.minimum(np.maximum(qx, qy), 0) - h


def _ellipsoid_field(p, c, axes, radii):
    q = (p - c) @ np.asarray(axes).T / np.asarray(radii)
    return (np.linalg.norm(q, axis=1) - 1.0) * np.min(radii)


def hand_implicit(points: np.ndarray, sk: Optional[Dict] = None) -> np.ndarray:
    """Implicit function of the rest-pose right hand (negative inside).

    A rounded palm slab smoothly merged with thenar and hypothenar pads, with
    each finger tube smoothly merged into the palm (but not into the other
    fingers, so the fingers stay separate). Roughly a signed distance in
    metres near the surface.

    Args:
        points (np.ndarray): ``(N, 3)`` points.
        sk (dict, optional): :func:`hand_skeleton` output.

    Returns:
        np.ndarray: ``(N,)`` values.
    """
    if sk is None:
        sk = hand_skeleton()
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    fin = sk['fingers']
    palm = _palm_field(p, sk['palm'])
    th = fin['thumb']
    # thenar pad along the thumb metacarpal, palmar side
    thenar = _ellipsoid_field(
        p, th['origin'] + 0.016 * th['d'] + np.array([0.004, -0.005, -0.007]),
        np.stack([th['d'], th['e_lat'], th['e_dor']]), (0.034, 0.019, 0.015))
    hypo = _ellipsoid_field(p, np.array([0.055, -0.006, -0.030]), np.eye(3),
                            (0.038, 0.012, 0.014))
    palm = _smin(_smin(palm, thenar, 0.014), hypo, 0.010)
    out = _smin(palm, _finger_field(p, th), 0.010)
    for name in ('index', 'middle', 'ring', 'little'):
        out = np.minimum(out, _smin(palm, _finger_field(p, fin[name]), 0.007))
    return out


def _implicit_grad(fun, p: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    g = np.empty_like(p)
    for k in range(3):
        dp = np.zeros(3)
        dp[k] = eps
        g[:, k] = (fun(p + dp) - fun(p - dp)) / (2 * eps)
    return g


# --------------------------------------------------------------------------
# control cage and subdivision
# --------------------------------------------------------------------------

#: angles (degrees) of the 6 coarse ring vertices around a finger axis, in the
#: (e_lat, e_dor) plane: palmar-ulnar, palmar-radial, radial, dorsal-radial,
#: dorsal-ulnar, ulnar. After subdivision the 12 ring vertices are 30 deg
#: apart.
_RING_ANGLES = np.deg2rad([-120.0, -60.0, 0.0, 60.0, 120.0, 180.0])
#: cage columns of the palm's distal face, ulnar to radial
_PALM_COLUMNS = ('little', 'ring', 'middle', 'index')


def control_cage(sk: Dict, nx: int = 3, thumb_column: int = 1) -> Dict:
    """Coarse quad cage of the right hand (genus 0, one 8-edge wrist hole).

    The palm is a box of ``nx`` (wrist to knuckles) x 4 (ulnar to radial) x 2
    (palmar to dorsal) quads; the 2 x 2 centre of its wrist face is removed
    (the wrist hole), each column of its distal face is extruded into a
    finger tube of 6-vertex rings closed by three quads around a pole (the
    fingertip), and the thumb tube is extruded from the radial face's column
    ``thumb_column``.

    Args:
        sk (dict): :func:`hand_skeleton` output.
        nx (int): palm segments from the wrist to the knuckles.
        thumb_column (int): radial-face column the thumb grows from.

    Returns:
        dict: ``verts`` ``(V, 3)``; ``quads`` ``(Q, 4)`` (not yet oriented);
        ``part`` ``(V,)`` int: -1 palm, else index into :data:`FINGER_NAMES`;
        ``t`` ``(V,)`` ring number along the finger (0 on the palm);
        ``ang`` ``(V, 2)`` unit ``(cos, sin)`` of the ring angle (0 on the
        palm).
    """
    palm = sk['palm']
    fin = sk['fingers']
    verts: List = []
    part: List = []
    tt: List = []
    ang: List = []
    quads: List = []

    def add(p, pa=-1, t=0.0, a=(0.0, 0.0)):
        verts.append(np.asarray(p, np.float64))
        part.append(pa)
        tt.append(t)
        ang.append(a)
        return len(verts) - 1

    nz, ny = 4, 2
    x_cut = sk['wrist_x']
    z_wrist = np.linspace(-0.026, 0.025, nz + 1)
    z_dist = np.array([-0.0455, -0.0290, -0.0090, 0.0130, 0.0335])
    x_dist = np.array([0.016, -0.003, -0.010, -0.0105, 0.004])

    def lattice_pos(ix, iz, iy):
        s = ix / nx
        x = (1 - s) * x_cut + s * x_dist[iz]
        z = (1 - s) * z_wrist[iz] + s * z_dist[iz]
        h = np.interp(x, palm['h_x'], palm['h'])
        y = (iy - 1) * h
        return (x, y, z)

    lat = {}
    for ix in range(nx + 1):
        for iz in range(nz + 1):
            for iy in range(ny + 1):
                on_surface = ix in (0, nx) or iz in (0, nz) or iy in (0, ny)
                if on_surface and not (ix == 0 and iz == 2 and iy == 1):
                    lat[ix, iz, iy] = add(lattice_pos(ix, iz, iy))

    def q(a, b, c, d):
        quads.append((lat[a], lat[b], lat[c], lat[d]))

    # dorsal / palmar faces
    for ix in range(nx):
        for iz in range(nz):
            for iy in (0, ny):
                q((ix, iz, iy), (ix + 1, iz, iy), (ix + 1, iz + 1, iy),
                  (ix, iz + 1, iy))
    # ulnar / radial side faces (radial one without the thumb column)
    for ix in range(nx):
        for iy in range(ny):
            for iz in (0, nz):
                if iz == nz and ix == thumb_column:
                    continue
                q((ix, iz, iy), (ix + 1, iz, iy), (ix + 1, iz, iy + 1),
                  (ix, iz, iy + 1))
    # wrist face: only its outer columns, the centre is the wrist hole
    for iz in (0, nz - 1):
        for iy in range(ny):
            q((0, iz, iy), (0, iz + 1, iy), (0, iz + 1, iy + 1),
              (0, iz, iy + 1))

    def tube(base, fidx, f):
        prev = base
        for k, s in enumerate(f['ring_s'][::2]):
            ring = []
            for a in _RING_ANGLES:
                ca, sa = np.cos(a), np.sin(a)
                p = _tube_point(f, np.array([s]), np.array([a]))[0]
                ring.append(add(p, fidx, float(k + 1), (ca, sa)))
            for j in range(6):
                quads.append(
                    (prev[j], prev[(j + 1) % 6], ring[(j + 1) % 6], ring[j]))
            prev = ring
        # fingertip: 3 quads around a pole on the finger axis
        tip = add(f['origin'] + f['joint_s'][3] * f['d'], fidx, float(k + 1.5),
                  (0.0, 0.0))
        for j in (0, 2, 4):
            quads.append((tip, prev[j], prev[j + 1], prev[(j + 2) % 6]))

    for c, name in enumerate(_PALM_COLUMNS):
        base = [
            lat[nx, c, 0], lat[nx, c + 1, 0], lat[nx, c + 1, 1],
            lat[nx, c + 1, 2], lat[nx, c, 2], lat[nx, c, 1]
        ]
        tube(base, FINGER_NAMES.index(name), fin[name])
    c = thumb_column
    base = [
        lat[c, nz, 0], lat[c + 1, nz, 0], lat[c + 1, nz, 1], lat[c + 1, nz, 2],
        lat[c, nz, 2], lat[c, nz, 1]
    ]
    tube(base, 0, fin['thumb'])
    return dict(
        verts=np.array(verts),
        quads=np.array(quads, np.int64),
        part=np.array(part, np.int64),
        t=np.array(tt),
        ang=np.array(ang, np.float64))


def _orient_polygons(faces: np.ndarray) -> np.ndarray:
    """Consistently orient a connected manifold polygon mesh (BFS)."""
    faces = [list(f) for f in faces]
    edge_faces: Dict = {}
    for fi, f in enumerate(faces):
        for i in range(len(f)):
            e = (min(f[i], f[i - 1]), max(f[i], f[i - 1]))
            edge_faces.setdefault(e, []).append(fi)
    if any(len(v) > 2 for v in edge_faces.values()):
        raise ValueError('non-manifold edge in the control mesh')

    def directed(f):
        return {(f[i - 1], f[i]) for i in range(len(f))}

    done = np.zeros(len(faces), bool)
    done[0] = True
    stack = [0]
    while stack:
        fi = stack.pop()
        f = faces[fi]
        for i in range(len(f)):
            e = (min(f[i], f[i - 1]), max(f[i], f[i - 1]))
            for fj in edge_faces[e]:
                if fj == fi or done[fj]:
                    continue
                # a consistent neighbour walks the shared edge the other way
                if (f[i - 1], f[i]) in directed(faces[fj]):
                    faces[fj] = faces[fj][::-1]
                done[fj] = True
                stack.append(fj)
    if not done.all():
        raise ValueError('the control mesh is not connected')
    return np.array(faces, np.int64)


def catmull_clark(
    verts: np.ndarray,
    quads: np.ndarray,
    attrs: Optional[Dict[str, np.ndarray]] = None
) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    """One Catmull-Clark step on an oriented quad mesh with boundaries.

    New vertices: the ``V`` old ones, then one per edge, then one per face.
    Per-vertex attributes are carried along: edge and face vertices get the
    mean of their parents' attributes, except integer attributes, which get
    the maximum.

    Args:
        verts (np.ndarray): ``(V, 3)``.
        quads (np.ndarray): ``(Q, 4)`` consistently oriented.
        attrs (dict, optional): name -> ``(V, ...)`` arrays.

    Returns:
        tuple: ``(V + E + Q, 3)`` vertices, ``(4Q, 4)`` quads (same
        orientation) and the carried attributes.
    """
    attrs = attrs or {}
    nv, nq = len(verts), len(quads)
    he = np.stack([quads, np.roll(quads, -1, axis=1)], axis=-1).reshape(-1, 2)
    und = np.sort(he, axis=1)
    edges, inv = np.unique(und, axis=0, return_inverse=True)
    inv = inv.reshape(nq, 4)  # edge id of (q[i], q[i+1])
    ne = len(edges)
    face_of_he = np.repeat(np.arange(nq), 4)
    ecount = np.bincount(inv.ravel(), minlength=ne)
    fpts = verts[quads].mean(axis=1)
    esum = np.zeros((ne, 3))
    np.add.at(esum, inv.ravel(), fpts[face_of_he])
    mid = verts[edges].mean(axis=1)
    boundary_e = ecount == 1
    epts = np.where(boundary_e[:, None], mid,
                    (verts[edges].sum(axis=1) + esum) / 4.0)
    # vertex points
    vpts = verts.copy()
    is_bv = np.zeros(nv, bool)
    is_bv[edges[boundary_e].ravel()] = True
    nface = np.bincount(quads.ravel(), minlength=nv).astype(np.float64)
    fsum = np.zeros((nv, 3))
    np.add.at(fsum, quads.ravel(), np.repeat(fpts, 4, axis=0))
    nedge = np.bincount(edges.ravel(), minlength=nv).astype(np.float64)
    msum = np.zeros((nv, 3))
    np.add.at(msum, edges[:, 0], mid)
    np.add.at(msum, edges[:, 1], mid)
    n = nedge
    inner = ~is_bv
    vpts[inner] = ((fsum[inner] / nface[inner, None]) + 2 *
                   (msum[inner] / n[inner, None]) +
                   (n[inner, None] - 3) * verts[inner]) / n[inner, None]
    bsum = np.zeros((nv, 3))
    be = edges[boundary_e]
    np.add.at(bsum, be[:, 0], verts[be[:, 1]])
    np.add.at(bsum, be[:, 1], verts[be[:, 0]])
    vpts[is_bv] = (bsum[is_bv] + 6 * verts[is_bv]) / 8.0
    new_v = np.concatenate([vpts, epts, fpts])
    new_q = []
    for i in range(4):
        new_q.append(
            np.stack([
                quads[:, i], nv + inv[:, i], nv + ne + np.arange(nq),
                nv + inv[:, (i - 1) % 4]
            ],
                     axis=1))
    new_q = np.stack(new_q, axis=1).reshape(-1, 4)
    new_attrs = {}
    for k, a in attrs.items():
        if a.dtype.kind in 'iu':
            ea = a[edges].max(axis=1)
            fa = a[quads].max(axis=1)
        else:
            ea = a[edges].mean(axis=1)
            fa = a[quads].mean(axis=1)
        new_attrs[k] = np.concatenate([a, ea, fa])
    return new_v, new_q, new_attrs


# --------------------------------------------------------------------------
# fitting the subdivided cage to the designed surface
# --------------------------------------------------------------------------


def _tube_scale(f: Dict, s: np.ndarray) -> np.ndarray:
    """Radius factor of the fingertip cap (1 before it, 0 at the tip)."""
    c = np.clip((s - f['tip_c']) / f['tip_len'], 0.0, 1.0)
    return np.sqrt(1.0 - c * c)


def _tube_point(f: Dict, s: np.ndarray, phi: np.ndarray) -> np.ndarray:
    k = _tube_scale(f, s)
    sc = np.minimum(s, f['tip_c'])
    rl = np.interp(sc, f['knots'], f['rad_lat']) * k
    rd = np.interp(sc, f['knots'], f['rad_dor']) * k
    return (f['origin'] + s[:, None] * f['d'] +
            (rl * np.cos(phi))[:, None] * f['e_lat'] +
            (rd * np.sin(phi))[:, None] * f['e_dor'])


def _wrist_curve(sk: Dict, n: int, samples: int = 1440) -> np.ndarray:
    """``n`` points equally spaced (arc length) on the wrist cross-section.

    The section of :func:`hand_implicit` by the plane ``x = wrist_x``, found
    by bisection along rays from its centre; point 0 is on the ulnar side
    (``-z``) and the points turn from there towards the palm (``-y``).

    Returns:
        np.ndarray: ``(n, 3)``.
    """
    x = sk['wrist_x']
    c = np.array([x, 0.0, sk['wrist_zc']])
    th = np.pi + 2 * np.pi * np.arange(samples) / samples
    dirs = np.stack([np.zeros(samples), -np.sin(th - np.pi),
                     np.cos(th)],
                    axis=1)
    lo = np.zeros(samples)
    hi = np.full(samples, 0.08)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        inside = hand_implicit(c + mid[:, None] * dirs, sk) < 0
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    pts = c + (0.5 * (lo + hi))[:, None] * dirs
    seg = np.linalg.norm(np.roll(pts, -1, axis=0) - pts, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    target = cum[-1] * np.arange(n) / n
    closed = np.concatenate([pts, pts[:1]])
    return np.stack([np.interp(target, cum, closed[:, k]) for k in range(3)],
                    axis=1)


def _edges_of(faces: np.ndarray) -> np.ndarray:
    f = np.asarray(faces)
    k = f.shape[1]
    e = np.concatenate([f[:, [i, (i + 1) % k]] for i in range(k)])
    return np.unique(np.sort(e, axis=1), axis=0)


def _boundary_edges(faces: np.ndarray) -> np.ndarray:
    f = np.asarray(faces)
    k = f.shape[1]
    e = np.sort(
        np.concatenate([f[:, [i, (i + 1) % k]] for i in range(k)]), axis=1)
    u, c = np.unique(e, axis=0, return_counts=True)
    return u[c == 1]


def _project(fun,
             p: np.ndarray,
             steps: int = 4,
             mask_axis: Optional[np.ndarray] = None) -> np.ndarray:
    """Newton steps onto the zero level set of ``fun``."""
    for _ in range(steps):
        val = fun(p)
        g = _implicit_grad(fun, p)
        if mask_axis is not None:
            g = g * mask_axis
        g2 = np.maximum((g * g).sum(1), 1e-12)
        p = p - (val / g2)[:, None] * g
    return p


def fit_surface(verts: np.ndarray,
                faces: np.ndarray,
                part: np.ndarray,
                t: np.ndarray,
                ang: np.ndarray,
                sk: Dict,
                iters: int = 60,
                step: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """Place the subdivided cage on the designed hand surface.

    Finger tube vertices (ring number ``t >= 1``) go exactly onto their
    parametric elliptic tubes (12 vertices 30 degrees apart per ring), the
    fingertip apexes onto the fingertips; all other vertices (palm, finger
    bases and webs, fingertip caps) are relaxed with a tangential uniform
    Laplacian and projected onto :func:`hand_implicit`; the wrist loop stays
    in the plane ``x = wrist_x``.

    Args:
        verts (np.ndarray): ``(V, 3)`` initial positions.
        faces (np.ndarray): ``(F, 3|4)`` polygons.
        part, t, ang: per-vertex tags of :func:`control_cage` (carried
            through :func:`catmull_clark`).
        sk (dict): :func:`hand_skeleton` output.
        iters (int): relaxation iterations.
        step (float): relaxation step.

    Returns:
        tuple: ``(V, 3)`` positions and the ``(V,)`` bool mask of the
        vertices that were placed parametrically (fixed).
    """
    p = np.array(verts, dtype=np.float64)
    nv = len(p)
    amag = np.linalg.norm(ang, axis=1)
    fixed = np.zeros(nv, bool)
    for fi, name in enumerate(FINGER_NAMES):
        f = sk['fingers'][name]
        nring = (len(f['ring_s']) + 1) // 2
        tube = (part == fi) & (t >= 1) & (amag > 0.8)
        s = np.interp(t[tube], 1.0 + 0.5 * np.arange(len(f['ring_s'])),
                      f['ring_s'])
        phi = np.arctan2(ang[tube, 1], ang[tube, 0])
        p[tube] = _tube_point(f, s, phi)
        # rings (partly) buried in the palm / thenar are relaxed instead
        buried = hand_implicit(p[tube], sk) < -2e-4
        tube_ids = np.nonzero(tube)[0]
        on_surface = np.ones(len(tube_ids), bool)
        for tv in np.unique(t[tube]):
            ring = t[tube] == tv
            if buried[ring].any():
                on_surface[ring] = False
        apex = (part == fi) & (t >= nring) & (amag < 0.2)
        if apex.sum() != 1:
            raise RuntimeError(f'{name}: {apex.sum()} fingertip apexes')
        p[apex] = f['origin'] + f['joint_s'][3] * f['d']
        fixed[tube_ids[on_surface]] = True
        fixed |= apex
    edges = _edges_of(faces)
    bedges = _boundary_edges(faces)
    loop = _ordered_loop(bedges)
    if len(loop) != WRIST_LOOP_SIZE:
        raise RuntimeError(f'wrist loop of {len(loop)} vertices')
    # wrist loop: equally spaced on the section, matching the cyclic order
    curve = _wrist_curve(sk, len(loop))
    best = None
    for lp in (loop, loop[::-1]):
        for k in range(len(lp)):
            err = ((p[np.roll(lp, -k)] - curve)**2).sum()
            if best is None or err < best[0] - 1e-12:
                best = (err, np.roll(lp, -k))
    p[best[1]] = curve
    fixed[loop] = True
    free = ~fixed
    deg = np.bincount(edges.ravel(), minlength=nv).astype(np.float64)

    def fun(q):
        return hand_implicit(q, sk)

    p[free] = _project(fun, p[free])
    for _ in range(iters):
        acc = np.zeros_like(p)
        np.add.at(acc, edges[:, 0], p[edges[:, 1]])
        np.add.at(acc, edges[:, 1], p[edges[:, 0]])
        lap = acc / deg[:, None] - p
        g = _implicit_grad(fun, p[free])
        n = g / np.linalg.norm(g, axis=1, keepdims=True)
        lf = lap[free]
        lf = lf - (lf * n).sum(1, keepdims=True) * n
        p[free] += step * lf
        p[free] = _project(fun, p[free], steps=2)
    p[free] = _project(fun, p[free], steps=4)
    return p, fixed


def _ordered_loop(bedges: np.ndarray) -> np.ndarray:
    """Vertices of a single boundary loop in cyclic order."""
    nb: Dict = {}
    for a, b in bedges.tolist():
        nb.setdefault(a, []).append(b)
        nb.setdefault(b, []).append(a)
    if any(len(v) != 2 for v in nb.values()):
        raise RuntimeError('the boundary is not a set of simple loops')
    start = min(nb)
    loop = [start, min(nb[start])]
    while True:
        a, b = nb[loop[-1]]
        nxt = a if a != loop[-2] else b
        if nxt == start:
            break
        loop.append(nxt)
    if len(loop) != len(nb):
        raise RuntimeError('the boundary has more than one loop')
    return np.array(loop, np.int64)


def _triangulate(verts: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Split every quad along its shorter diagonal (orientation kept)."""
    q = quads
    d02 = np.linalg.norm(verts[q[:, 0]] - verts[q[:, 2]], axis=1)
    d13 = np.linalg.norm(verts[q[:, 1]] - verts[q[:, 3]], axis=1)
    use02 = d02 <= d13 * (1 + 1e-9)
    t02 = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]], axis=1)
    t13 = np.concatenate([q[:, [0, 1, 3]], q[:, [1, 2, 3]]], axis=1)
    tri = np.where(use02[:, None], t02, t13)
    return tri.reshape(-1, 3)


def _split_longest_edges(verts: np.ndarray, faces: np.ndarray,
                         allowed: np.ndarray,
                         count: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split ``count`` longest interior edges between ``allowed`` vertices.

    Splitting the edge ``a-b`` of the triangles ``(a, b, c)`` and ``(b, a,
    d)`` at its midpoint ``m`` gives ``(a, m, c)``, ``(m, b, c)``, ``(b, m,
    d)``, ``(m, a, d)``: one vertex and two faces more, same topology.
    """
    verts = np.array(verts)
    faces = np.array(faces)
    allowed = np.array(allowed)
    for _ in range(count):
        he = np.concatenate(
            [faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        fid = np.tile(np.arange(len(faces)), 3)
        opp = np.concatenate([faces[:, 2], faces[:, 0], faces[:, 1]])
        key = {(a, b): i for i, (a, b) in enumerate(he.tolist())}
        length = np.linalg.norm(verts[he[:, 0]] - verts[he[:, 1]], axis=1)
        ok = allowed[he[:, 0]] & allowed[he[:, 1]] & (he[:, 0] < he[:, 1])
        ok &= np.array([(b, a) in key for a, b in he.tolist()])
        cand = np.nonzero(ok)[0]
        # longest first; ties (to 1e-12 m) broken by the vertex ids
        order = np.lexsort((he[cand, 1], he[cand,
                                            0], -np.round(length[cand], 12)))
        i = cand[order[0]]
        a, b = he[i]
        j = key[(b, a)]
        c, d = opp[i], opp[j]
        m = len(verts)
        verts = np.concatenate([verts, verts[[a, b]].mean(0, keepdims=True)])
        allowed = np.concatenate([allowed, [True]])
        faces[fid[i]] = (a, m, c)
        faces[fid[j]] = (b, m, d)
        faces = np.concatenate([faces, [(m, b, c), (m, a, d)]])
    return verts, faces


def hand_template_mesh(sk: Optional[Dict] = None) -> Dict:
    """The rest-pose right-hand mesh (778 vertices, 1538 triangles).

    Runs :func:`control_cage`, :func:`catmull_clark`, :func:`fit_surface`,
    triangulates, splits the longest palm edges up to :data:`NUM_VERTICES`,
    orients the faces outwards and permutes the vertices so that the apex of
    each fingertip lands on :data:`FINGERTIP_VERTEX_IDS`.

    Args:
        sk (dict, optional): :func:`hand_skeleton` output.

    Returns:
        dict: ``verts`` ``(778, 3)``; ``faces`` ``(1538, 3)`` int64;
        ``part`` ``(778,)`` (-1 palm, else index into :data:`FINGER_NAMES`),
        ``t`` ``(778,)`` ring number along the finger, ``fixed`` ``(778,)``
        bool (on a parametric finger tube), ``wrist_loop`` ``(16,)`` vertex
        ids in the faces' winding order.
    """
    if sk is None:
        sk = hand_skeleton()
    cage = control_cage(sk)
    quads = _orient_polygons(cage['quads'])
    v, quads, at = catmull_clark(
        cage['verts'], quads,
        dict(part=cage['part'], t=cage['t'], ang=cage['ang']))
    part, tt, ang = at['part'], at['t'], at['ang']
    v, _ = fit_surface(v, quads, part, tt, ang, sk)
    tri = _triangulate(v, quads)
    nsplit = NUM_VERTICES - len(v)
    if nsplit < 0:
        raise RuntimeError(f'the subdivided cage has {len(v)} > '
                           f'{NUM_VERTICES} vertices')
    palm = (part == -1)
    palm[_boundary_edges(tri).ravel()] = False
    v, tri = _split_longest_edges(v, tri, palm, nsplit)
    part = np.concatenate([part, np.full(nsplit, -1)])
    tt = np.concatenate([tt, np.zeros(nsplit)])
    ang = np.concatenate([ang, np.zeros((nsplit, 2))])
    v, fixed = fit_surface(v, tri, part, tt, ang, sk, iters=20)
    # outward orientation: positive volume once the wrist is capped
    if signed_volume(*cap_boundary_loops(v, tri)) < 0:
        tri = tri[:, ::-1]
    # permutation: fingertip apexes to MANO's ids
    amag = np.linalg.norm(ang, axis=1)
    perm = np.full(NUM_VERTICES, -1, np.int64)
    tips = []
    for fi, name in enumerate(FINGER_NAMES):
        nring = (len(sk['fingers'][name]['ring_s']) + 1) // 2
        apex = np.nonzero((part == fi) & (tt >= nring) & (amag < 0.2))[0]
        perm[FINGERTIP_VERTEX_IDS[name]] = apex[0]
        tips.append(apex[0])
    rest = np.setdiff1d(np.arange(NUM_VERTICES), tips)
    perm[perm < 0] = rest
    inv = np.empty_like(perm)
    inv[perm] = np.arange(NUM_VERTICES)
    tri = inv[tri]
    # a canonical face order: by smallest vertex id, then rotation
    tri = np.array([np.roll(f, -int(np.argmin(f))) for f in tri])
    tri = tri[np.lexsort((tri[:, 2], tri[:, 1], tri[:, 0]))]
    loop = boundary_loops(tri)
    if len(loop) != 1 or len(loop[0]) != WRIST_LOOP_SIZE:
        raise RuntimeError('the template does not have one 16-vertex wrist '
                           'loop')
    return dict(
        verts=v[perm],
        faces=tri.astype(np.int64),
        part=part[perm],
        t=tt[perm],
        fixed=fixed[perm],
        wrist_loop=loop[0])


# --------------------------------------------------------------------------
# mesh checks (also used by the tests)
# --------------------------------------------------------------------------


def winding_number(verts: np.ndarray, faces: np.ndarray,
                   points: np.ndarray) -> np.ndarray:
    """Generalised winding number of a closed oriented mesh at points.

    About 1 inside, 0 outside (Van Oosterom & Strackee solid angles); the
    shared :func:`mmhand2p.geometry.winding_numbers` in float64.

    Args:
        verts (np.ndarray): ``(V, 3)``.
        faces (np.ndarray): ``(F, 3)``.
        points (np.ndarray): ``(P, 3)``.

    Returns:
        np.ndarray: ``(P,)``.
    """
    q = torch.as_tensor(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    v = torch.as_tensor(np.asarray(verts, dtype=np.float64))
    return winding_numbers(q[None], v[None],
                           np.asarray(faces, dtype=np.int64))[0].numpy()


def self_intersections(verts: np.ndarray,
                       faces: np.ndarray,
                       chunk: int = 200000) -> np.ndarray:
    """Pairs (edge, triangle) where a mesh edge crosses a non-adjacent face.

    Two triangles that share no vertex intersect (in general position) iff an
    edge of one crosses the other, so an empty result means no
    self-intersection.

    Args:
        verts (np.ndarray): ``(V, 3)``.
        faces (np.ndarray): ``(F, 3)``.

    Returns:
        np.ndarray: ``(K, 2)`` rows ``(edge id into edge_face_counts'
        edges, face id)``.
    """
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    edges, _ = edge_face_counts(f)
    e0, e1 = v[edges[:, 0]], v[edges[:, 1]]
    emin, emax = np.minimum(e0, e1), np.maximum(e0, e1)
    tv = v[f]
    tmin, tmax = tv.min(1), tv.max(1)
    ne, nf = len(edges), len(f)
    hits = []
    rows = max(1, chunk // nf)
    for s in range(0, ne, rows):
        ei = np.arange(s, min(ne, s + rows))
        ov = np.all(
            (emin[ei, None] <= tmax[None]) & (emax[ei, None] >= tmin[None]),
            axis=-1)
        ee, ff = np.nonzero(ov)
        ee = ei[ee]
        share = np.any(edges[ee, :, None] == f[ff, None, :], axis=(1, 2))
        ee, ff = ee[~share], ff[~share]
        if len(ee) == 0:
            continue
        o = v[edges[ee, 0]]
        d = v[edges[ee, 1]] - o
        p0, p1, p2 = v[f[ff, 0]], v[f[ff, 1]], v[f[ff, 2]]
        u1, u2 = p1 - p0, p2 - p0
        h = np.cross(d, u2)
        det = (u1 * h).sum(1)
        good = np.abs(det) > 1e-18
        inv = np.where(good, 1.0 / np.where(good, det, 1.0), 0.0)
        sv = o - p0
        bu = (sv * h).sum(1) * inv
        qv = np.cross(sv, u1)
        bv = (d * qv).sum(1) * inv
        tt = (u2 * qv).sum(1) * inv
        hit = good & (bu >= 0) & (bv >= 0) & (bu + bv <= 1) & (tt >= 0) & \
            (tt <= 1)
        if hit.any():
            hits.append(np.stack([ee[hit], ff[hit]], axis=1))
    return np.concatenate(hits) if hits else np.zeros((0, 2), np.int64)


# --------------------------------------------------------------------------
# joint regressor and skinning weights
# --------------------------------------------------------------------------


def _joint_finger(j: int) -> Tuple[Optional[str], int]:
    for name, ids in FINGER_JOINTS.items():
        if j in ids:
            return name, ids.index(j)
    return None, -1


def joint_regressor(verts: np.ndarray, part: np.ndarray,
                    sk: Dict) -> np.ndarray:
    """Sparse non-negative joint regressor (rows sum to 1).

    Each joint is a weighted mean of a ring of vertices around it: the
    vertices within a slab across the bone at the joint (and near its axis),
    weighted as close as possible to a Gaussian of the distance to the joint
    plane while reproducing the designed joint centre exactly (non-negative
    least squares with the centre and the unit sum as heavily weighted
    rows). The joints therefore lie inside the mesh.

    Args:
        verts (np.ndarray): ``(V, 3)`` rest vertices.
        part (np.ndarray): ``(V,)`` vertex parts (see
            :func:`hand_template_mesh`).
        sk (dict): :func:`hand_skeleton` output.

    Returns:
        np.ndarray: ``(16, V)`` regressor.
    """
    from scipy.optimize import nnls
    nv = len(verts)
    reg = np.zeros((NUM_JOINTS, nv))
    target = sk['joints']
    for j in range(NUM_JOINTS):
        name, k = _joint_finger(j)
        if name is None:
            x0 = sk['wrist_x']
            s = x0 - verts[:, 0]
            cand = np.nonzero(s < 0.016)[0]
            sig = 0.010
            ds = s[cand] - (x0 - target[0, 0])
        else:
            f = sk['fingers'][name]
            q = verts - f['origin']
            s = q @ f['d'] - f['joint_s'][k]
            rho = np.linalg.norm(q - np.outer(q @ f['d'], f['d']), axis=1)
            rmax = 1.6 * np.interp(f['joint_s'][k], f['knots'], f['rad_lat'])
            slab = 0.006 if k > 0 else 0.009
            if name == 'thumb' and k == 0:
                slab, rmax = 0.012, 0.024
            ok = (np.abs(s) < slab) & (rho < rmax)
            if k > 0:
                ok &= part == FINGER_NAMES.index(name)
            cand = np.nonzero(ok)[0]
            sig = slab / 2
            ds = s[cand]
        w0 = np.exp(-(ds / sig)**2)
        w0 /= w0.sum()
        lam = 1e5
        a = np.concatenate([
            lam * verts[cand].T, lam * np.ones((1, len(cand))),
            np.eye(len(cand))
        ])
        b = np.concatenate([lam * target[j], [lam], w0])
        w, _ = nnls(a, b, maxiter=50 * len(cand))
        w /= w.sum()
        err = np.linalg.norm(w @ verts[cand] - target[j])
        if err > 1e-4:
            raise RuntimeError(f'joint {j} is not inside its vertex ring '
                               f'({err * 1e3:.2f} mm off)')
        reg[j, cand] = w
    return reg


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


#: half widths (m) of the skinning blend zones at the 3 joints of a finger
_BLEND = {'thumb': (0.014, 0.008, 0.006), 'other': (0.009, 0.0065, 0.0055)}


def _chain_weights(name: str, s: np.ndarray, sk: Dict) -> np.ndarray:
    """(N, 4) weights of [palm, joint 1, joint 2, joint 3] along a finger."""
    f = sk['fingers'][name]
    hw = _BLEND['thumb' if name == 'thumb' else 'other']
    step = [
        _smoothstep((s - f['joint_s'][k] + hw[k]) / (2 * hw[k]))
        for k in range(3)
    ]
    return np.stack(
        [1 - step[0], step[0] - step[1], step[1] - step[2], step[2]], axis=1)


def skinning_weights(verts: np.ndarray,
                     faces: np.ndarray,
                     part: np.ndarray,
                     sk: Dict,
                     smooth_iters: int = 1) -> np.ndarray:
    """Linear blend skinning weights ``(V, 16)`` (rows sum to 1, >= 0).

    A finger vertex follows, along its finger's axis, the palm (joint 0)
    before the first joint, then joint 1 / 2 / 3 of the finger (a bone
    segment follows its PROXIMAL joint, as in MANO), with smoothstep blends
    across each joint. Palm vertices near a finger base get that finger's
    chain weights scaled by a Gaussian membership of their distance to the
    finger axis. A few uniform Laplacian iterations smooth the result, and
    the wrist end (last 8 mm) fades to the root joint alone.

    Args:
        verts (np.ndarray): ``(V, 3)``.
        faces (np.ndarray): ``(F, 3)``.
        part (np.ndarray): ``(V,)`` vertex parts.
        sk (dict): :func:`hand_skeleton` output.
        smooth_iters (int): smoothing iterations.

    Returns:
        np.ndarray: ``(V, 16)``.
    """
    nv = len(verts)
    w = np.zeros((nv, NUM_JOINTS))
    member = np.zeros((nv, len(FINGER_NAMES)))
    chains = []
    for fi, name in enumerate(FINGER_NAMES):
        f = sk['fingers'][name]
        q = verts - f['origin']
        s = q @ f['d']
        # palm vertices attach to a finger by their distance to its base
        # segment: the thumb metacarpal (CMC to MCP), or the knuckle region
        # of a long finger
        lo, hi = (0.0, f['joint_s'][1]) if name == 'thumb' else (-0.010, 0.020)
        sc = np.clip(s, lo, hi)
        dist = np.linalg.norm(q - sc[:, None] * f['d'], axis=1)
        r0 = f['rad_lat'][1]
        sig = 1.2 * r0 if name == 'thumb' else 0.9 * r0
        member[:, fi] = np.exp(-np.maximum(dist - r0, 0.0)**2 / sig**2)
        chains.append(_chain_weights(name, s, sk))
    is_f = part >= 0
    member[is_f] = 0.0
    member[is_f, part[is_f]] = 1.0
    tot = member.sum(1, keepdims=True)
    member = np.where(tot > 1, member / np.maximum(tot, 1e-12), member)
    w[:, 0] = 1.0 - member.sum(1)
    for fi, name in enumerate(FINGER_NAMES):
        ids = FINGER_JOINTS[name]
        cw = chains[fi] * member[:, fi:fi + 1]
        w[:, 0] += cw[:, 0]
        w[:, list(ids)] += cw[:, 1:]
    edges, _ = edge_face_counts(faces)
    deg = np.bincount(edges.ravel(), minlength=nv)[:, None].astype(float)
    for _ in range(smooth_iters):
        acc = np.zeros_like(w)
        np.add.at(acc, edges[:, 0], w[edges[:, 1]])
        np.add.at(acc, edges[:, 1], w[edges[:, 0]])
        w = 0.5 * w + 0.5 * acc / deg
    # the wrist end follows the root only
    w[:, 1:] *= _smoothstep((sk['wrist_x'] - verts[:, 0]) / 0.008)[:, None]
    w[:, 0] = 1.0 - w[:, 1:].sum(1)
    w[w < 1e-6] = 0.0
    return w / w.sum(1, keepdims=True)


# --------------------------------------------------------------------------
# pose prior
# --------------------------------------------------------------------------


def finger_joint_axes(sk: Optional[Dict] = None) -> np.ndarray:
    """Rotation axes of the 15 finger joints of the right hand (rest frame).

    Args:
        sk (dict, optional): :func:`hand_skeleton` output.

    Returns:
        np.ndarray: ``(15, 3, 3)``: for joint ``j = 1..15`` (row ``j - 1``)
        the unit axes of flexion (positive curls the finger towards the
        palm; for the thumb towards its pad / across the palm), abduction
        (about the nail normal; positive spreads the finger towards the
        thumb, and the thumb away from the index) and twist (about the finger
        axis).
    """
    if sk is None:
        sk = hand_skeleton()
    axes = np.zeros((15, 3, 3))
    for name, ids in FINGER_JOINTS.items():
        f = sk['fingers'][name]
        flex = np.cross(f['e_dor'], f['d'])
        abd = f['e_dor'].copy()
        if name == 'thumb' and np.cross(abd, f['d']) @ f['e_lat'] > 0:
            abd = -abd  # positive moves the thumb away from the index
        for j in ids:
            axes[j - 1] = np.stack([flex, abd, f['d']])
    return axes


def finger_pose_from_angles(flex: np.ndarray,
                            abd: np.ndarray,
                            twist: np.ndarray,
                            sk: Optional[Dict] = None) -> np.ndarray:
    """Axis-angle finger poses from per-joint angles (right hand).

    The rotation vector of joint ``j`` is ``flex * a_flex + abd * a_abd +
    twist * a_twist`` with the axes of :func:`finger_joint_axes`.

    Args:
        flex, abd, twist (np.ndarray): ``(..., 15)`` radians, MANO joint order
            1..15.
        sk (dict, optional): :func:`hand_skeleton` output.

    Returns:
        np.ndarray: ``(..., 45)`` axis-angle poses (``hand_pose`` of MANO).
    """
    ax = finger_joint_axes(sk)
    rv = (
        np.asarray(flex)[..., None] * ax[:, 0] +
        np.asarray(abd)[..., None] * ax[:, 1] +
        np.asarray(twist)[..., None] * ax[:, 2])
    return rv.reshape(*rv.shape[:-2], 45)


#: joint limits (radians) of [flexion, abduction] for the MCP / PIP / DIP of
#: a long finger and the CMC / MCP / IP of the thumb
_LIMITS = {
    'finger':
    np.array([[[-0.35, 1.60], [-0.40, 0.40]], [[-0.05, 1.90], [-0.08, 0.08]],
              [[-0.15, 1.40], [-0.06, 0.06]]]),
    'thumb':
    np.array([[[-0.40, 1.00], [-0.30, 0.70]], [[-0.25, 1.10], [-0.15, 0.15]],
              [[-0.35, 1.45], [-0.08, 0.08]]]),
}


def sample_finger_poses(num: int,
                        rng: np.random.Generator,
                        sk: Optional[Dict] = None) -> np.ndarray:
    """Random plausible finger poses of the right hand (the pose prior).

    A shared grasp level ``g ~ Beta(1, 2)`` curls all fingers together;
    per-finger curls deviate from it with correlated noise (neighbouring
    fingers, ring / little most strongly, move together); sometimes single
    fingers are extended (pointing, "V" and thumb-up like poses). PIP and
    DIP flexion are coupled (DIP about 2/3 of PIP), the spread shrinks as the
    fingers curl, and every angle is clipped to joint limits. The thumb curls
    with the grasp and abducts / rotates to oppose the fingers.

    Args:
        num (int): number of poses.
        rng (np.random.Generator): random generator (e.g.
            ``np.random.default_rng(seed)``).
        sk (dict, optional): :func:`hand_skeleton` output.

    Returns:
        np.ndarray: ``(num, 45)`` axis-angle ``hand_pose`` (15 joints x 3,
        MANO order 1..15) for a flat-hand-mean right MANO model; mirror with
        :func:`mirror_axis_angle_pose` for the left hand.
    """
    n = int(num)
    g = rng.beta(1.0, 2.0, size=n)
    # correlated per-finger curl deviations: index, middle, ring, little
    cov = 0.045 * np.array([[1.00, 0.55, 0.35, 0.25], [0.55, 1.00, 0.75, 0.55],
                            [0.35, 0.75, 1.00, 0.85], [0.25, 0.55, 0.85, 1.00]
                            ])
    dev = rng.multivariate_normal(np.zeros(4), cov, size=n, method='cholesky')
    curl = np.clip(g[:, None] + dev, 0.0, 1.0)
    # extended-finger gestures: index (pointing), index + middle (V)
    mode = rng.random(n)
    point = mode < 0.10
    vee = (mode >= 0.10) & (mode < 0.16)
    curl[point, 0] *= 0.15
    curl[vee, :2] *= 0.15
    curl[point | vee, 2:] = np.maximum(curl[point | vee, 2:], 0.7)
    spread = (rng.normal(0.10, 0.10, size=n) * (1.0 - 0.8 * curl.mean(1)))
    flex = np.zeros((n, 15))
    abd = np.zeros((n, 15))
    twist = rng.normal(0.0, 0.03, size=(n, 15))
    spread_gain = {'index': 1.0, 'middle': 0.15, 'ring': -0.6, 'little': -1.2}
    for i, name in enumerate(('index', 'middle', 'ring', 'little')):
        j1, j2, j3 = (j - 1 for j in FINGER_JOINTS[name])
        c = curl[:, i]
        mcp = 1.45 * c + rng.normal(0.0, 0.12, n) - 0.08
        pip = 1.65 * c + rng.normal(0.0, 0.12, n)
        dip = 0.66 * pip + rng.normal(0.0, 0.08, n)
        flex[:, j1], flex[:, j2], flex[:, j3] = mcp, pip, dip
        abd[:, j1] = spread * spread_gain[name] + rng.normal(0.0, 0.05, n)
        abd[:, j2] = rng.normal(0.0, 0.02, n)
        abd[:, j3] = rng.normal(0.0, 0.02, n)
    # thumb: follows the grasp, extended in thumb-up like poses
    ct = np.clip(0.8 * g + rng.normal(0.0, 0.2, n), 0.0, 1.0)
    ct[mode > 0.95] *= 0.1
    t1, t2, t3 = (j - 1 for j in FINGER_JOINTS['thumb'])
    flex[:, t1] = 0.65 * ct + rng.normal(0.0, 0.10, n)
    flex[:, t2] = 0.75 * ct + rng.normal(0.0, 0.10, n)
    flex[:, t3] = 0.95 * ct + rng.normal(0.0, 0.15, n) - 0.05
    abd[:, t1] = rng.normal(0.10, 0.18, n) - 0.3 * ct
    abd[:, t2] = rng.normal(0.0, 0.05, n)
    abd[:, t3] = rng.normal(0.0, 0.03, n)
    twist[:, t1] += 0.35 * ct + rng.normal(0.0, 0.08, n)
    for name, ids in FINGER_JOINTS.items():
        lim = _LIMITS['thumb' if name == 'thumb' else 'finger']
        for k, j in enumerate(ids):
            flex[:, j - 1] = np.clip(flex[:, j - 1], *lim[k, 0])
            abd[:, j - 1] = np.clip(abd[:, j - 1], *lim[k, 1])
    twist = np.clip(twist, -0.25, 0.6)
    return finger_pose_from_angles(flex, abd, twist, sk)


def mirror_axis_angle_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle rotations through ``x -> -x``: ``(x, y, z) -> (x, -y,
    -z)`` per joint (right-hand pose <-> left-hand pose); numpy front of
    :func:`mmhand2p.utils.geometry.mirror_axis_angle`.

    Args:
        pose (np.ndarray): ``(..., 3k)``.

    Returns:
        np.ndarray: same shape, float64.
    """
    p = np.array(pose, dtype=np.float64, copy=True)
    shp = p.shape
    p = mirror_axis_angle(torch.from_numpy(p.reshape(*shp[:-1], -1, 3)))
    return p.numpy().reshape(shp)


def pose_pca(poses: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of finger poses, MANO style.

    Args:
        poses (np.ndarray): ``(N, 45)``.

    Returns:
        tuple: ``hands_components`` ``(45, 45)`` orthonormal rows by
        decreasing variance (sign: largest-magnitude entry positive),
        ``hands_mean`` ``(45,)``, ``hands_coeffs`` ``(N, 45)`` with
        ``poses = hands_mean + hands_coeffs @ hands_components``.
    """
    x = np.asarray(poses, dtype=np.float64)
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / len(x)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(-evals, kind='stable')
    comps = evecs[:, order].T
    big = np.argmax(np.abs(comps), axis=1)
    comps *= np.sign(comps[np.arange(len(comps)), big])[:, None]
    return comps, mean, xc @ comps.T


# --------------------------------------------------------------------------
# numpy linear blend skinning (MANO / smplx semantics)
# --------------------------------------------------------------------------


def lbs_numpy(model: Dict[str, np.ndarray],
              pose: np.ndarray,
              betas: Optional[np.ndarray] = None
              ) -> Tuple[np.ndarray, np.ndarray]:
    """MANO forward pass of one hand on numpy arrays (float64).

    The shared pieces, no private copy: Rodrigues is
    :func:`mmhand2p.utils.geometry.axis_angle_to_matrix` and the skinning
    smplx's ``lbs`` (what :class:`MANOLayer` runs), on the arrays of
    :func:`build_hand_model` (MANO's file layout).

    Args:
        model (dict): arrays of :func:`build_hand_model`.
        pose (np.ndarray): ``(48,)`` axis-angle, global orientation first.
        betas (np.ndarray, optional): ``(10,)``.

    Returns:
        tuple: ``(778, 3)`` vertices and ``(16, 3)`` joints.
    """
    from smplx.lbs import lbs

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float64))

    shapedirs = t(model['shapedirs'])
    if betas is None:
        betas = np.zeros(shapedirs.shape[-1])
    rot = axis_angle_to_matrix(t(pose).reshape(1, 16, 3))
    posedirs = t(model['posedirs']).reshape(-1, 135).T
    # a copy: the model's kintree_table must not change (MANO stores the
    # root's parent as 2**32 - 1)
    parents = torch.tensor(np.asarray(model['kintree_table'][0], np.int64))
    parents[0] = -1
    verts, joints = lbs(
        t(betas)[None],
        rot,
        t(model['v_template']),
        shapedirs,
        posedirs,
        t(model['J_regressor']),
        parents,
        t(model['weights']),
        pose2rot=False)
    return verts[0].numpy(), joints[0].numpy()


# --------------------------------------------------------------------------
# shape space
# --------------------------------------------------------------------------

#: what each of the 10 shape directions does, and its size for beta = 1
SHAPE_DIRECTIONS = (
    ('overall size', 0.040),
    ('finger length (index to little)', 0.050),
    ('palm width', 0.055),
    ('palm length', 0.040),
    ('palmar-dorsal thickness of palm and fingers', 0.070),
    ('thumb length', 0.060),
    ('index finger length', 0.040),
    ('ring finger length', 0.040),
    ('little finger length', 0.055),
    ('finger girth', 0.060),
)


def shape_blend_dirs(verts: np.ndarray, weights: np.ndarray,
                     sk: Dict) -> np.ndarray:
    """The 10 shape directions ``(V, 3, 10)`` (``beta ~ N(0, 1)``).

    Smooth displacement fields built from the skeleton: vertices follow a
    finger in proportion to that finger's total skinning weight, so the
    palm-finger junctions deform smoothly. See :data:`SHAPE_DIRECTIONS` for
    the meaning and scale of each direction (relative change per unit
    beta); the resulting displacements are a few millimetres.

    Args:
        verts (np.ndarray): ``(V, 3)`` rest vertices.
        weights (np.ndarray): ``(V, 16)`` skinning weights.
        sk (dict): :func:`hand_skeleton` output.

    Returns:
        np.ndarray: ``(V, 3, 10)``.
    """
    v = np.asarray(verts, np.float64)
    nv = len(v)
    wrist = sk['joints'][0]
    member = {
        n: weights[:, list(ids)].sum(1)
        for n, ids in FINGER_JOINTS.items()
    }
    m_all = sum(member.values())
    fingers = sk['fingers']
    # per-finger geometry
    along, perp = {}, {}
    for n, f in fingers.items():
        q = v - f['origin']
        s = q @ f['d']
        along[n] = np.maximum(s, 0.0)[:, None] * f['d']
        perp[n] = q - s[:, None] * f['d']
    dirs = np.zeros((nv, 3, NUM_BETAS))
    z_c = 0.5 * (
        fingers['index']['origin'][2] + fingers['little']['origin'][2])
    long4 = ('index', 'middle', 'ring', 'little')
    # 0 overall size, about the wrist joint
    dirs[:, :, 0] = v - wrist
    # 1 length of the four long fingers
    dirs[:, :, 1] = sum(member[n][:, None] * along[n] for n in long4)
    # 2 palm width: palm scales in z, fingers move with their base
    dz = (1 - m_all) * (v[:, 2] - z_c) + sum(member[n] *
                                             (fingers[n]['origin'][2] - z_c)
                                             for n in fingers)
    dirs[:, 2, 2] = dz
    # 3 palm length: palm scales in x about the wrist, fingers translate
    dx = (1 - m_all) * (v[:, 0] - wrist[0]) + sum(
        member[n] * (fingers[n]['origin'][0] - wrist[0]) for n in fingers)
    dirs[:, 0, 3] = dx
    # 4 thickness (palmar-dorsal): palm in y, fingers along their nail
    # normal
    th = np.zeros((nv, 3))
    th[:, 1] = (1 - m_all) * v[:, 1]
    th += sum(member[n][:, None] * (perp[n] @ fingers[n]['e_dor'])[:, None] *
              fingers[n]['e_dor'] for n in fingers)
    dirs[:, :, 4] = th
    # 5 thumb length (from the CMC)
    dirs[:, :, 5] = member['thumb'][:, None] * along['thumb']
    # 6-8 single finger lengths
    for k, n in ((6, 'index'), (7, 'ring'), (8, 'little')):
        dirs[:, :, k] = member[n][:, None] * along[n]
    # 9 finger girth
    dirs[:, :, 9] = sum(member[n][:, None] * perp[n] for n in long4)
    scale = np.array([s for _, s in SHAPE_DIRECTIONS])
    return dirs * scale


# --------------------------------------------------------------------------
# the model files
# --------------------------------------------------------------------------


def build_hand_model(seed: int = 0,
                     is_rhand: bool = True,
                     num_pose_samples: int = NUM_POSE_SAMPLES
                     ) -> Dict[str, np.ndarray]:
    """All arrays of ``MANO_RIGHT`` / ``MANO_LEFT`` (MANO's keys and shapes).

    Args:
        seed (int): seed of the pose prior samples behind the PCA basis.
        is_rhand (bool): right hand, or its mirror image (left hand).
        num_pose_samples (int): rows of ``hands_coeffs``.

    Returns:
        dict: ``v_template`` (778, 3), ``f`` (1538, 3) uint32,
        ``J_regressor`` (16, 778) dense, ``J`` (16, 3), ``kintree_table``
        (2, 16) int64, ``weights`` (778, 16), ``shapedirs`` (778, 3, 10),
        ``posedirs`` (778, 3, 135) zeros, ``hands_components`` (45, 45),
        ``hands_mean`` (45,), ``hands_coeffs`` (N, 45), ``bs_style``
        'lbs', ``bs_type`` 'lrotmin' (float arrays float64).
    """
    sk = hand_skeleton()
    mesh = hand_template_mesh(sk)
    v, faces, part = mesh['verts'], mesh['faces'], mesh['part']
    reg = joint_regressor(v, part, sk)
    weights = skinning_weights(v, faces, part, sk)
    shapedirs = shape_blend_dirs(v, weights, sk)
    rng = np.random.default_rng(seed)
    poses = sample_finger_poses(num_pose_samples, rng, sk)
    comps, mean, coeffs = pose_pca(poses)
    parents = np.array(MANO_KINTREE_PARENTS, np.int64)
    parents[0] = 4294967295
    model = dict(
        v_template=v,
        f=faces.astype(np.uint32),
        J_regressor=reg,
        J=reg @ v,
        kintree_table=np.stack([parents, np.arange(NUM_JOINTS)]),
        weights=weights,
        shapedirs=shapedirs,
        posedirs=np.zeros((NUM_VERTICES, 3, 135)),
        hands_components=comps,
        hands_mean=mean,
        hands_coeffs=coeffs,
        bs_style=np.array('lbs'),
        bs_type=np.array('lrotmin'),
    )
    if not is_rhand:
        model = mirror_hand_model(model)
    return model


def mirror_hand_model(right: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The left hand: the mirror image of a right-hand model through x -> -x.

    ``v_template``, ``J`` and ``shapedirs`` get their x components negated,
    pose correctives become ``posedirs[v, c, (j, a, b)] * m_c * m_a * m_b``
    (``m = (-1, 1, 1)``; all zeros here), faces are reversed (outward
    normals), ``J_regressor`` and ``weights`` are unchanged. The pose PCA is
    that of the mirrored pose prior samples (axis-angle ``(x, y, z) -> (x,
    -y, -z)`` per joint): ``hands_mean`` and the rows of
    ``hands_components`` are mirrored and ``hands_coeffs`` kept, so a PCA
    coefficient vector means mirrored poses for the two hands.

    Args:
        right (dict): :func:`build_hand_model` arrays of the right hand.

    Returns:
        dict: the left-hand arrays.
    """
    left = {k: np.array(v, copy=True) for k, v in right.items()}
    m = np.array([-1.0, 1.0, 1.0])
    left['v_template'] = right['v_template'] * m
    left['J'] = right['J'] * m
    left['shapedirs'] = right['shapedirs'] * m[None, :, None]
    feat = np.tile(np.outer(m, m).reshape(-1), 15)
    left['posedirs'] = right['posedirs'] * m[None, :, None] * feat
    left['f'] = np.ascontiguousarray(right['f'][:, ::-1])
    aa = np.tile([1.0, -1.0, -1.0], 15)
    left['hands_components'] = right['hands_components'] * aa
    left['hands_mean'] = right['hands_mean'] * aa
    return left
