# Copyright (c) mmhand2p contributors. All rights reserved.
"""Hand joint orders and the one place that converts between them.

mmhand2p's order (ARCHITECTURE.md), 21 joints per hand, wrist first::

    0 wrist, 1-4 thumb (1 = CMC ... 4 = tip), 5-8 index (5 = MCP ... 8 = tip),
    9-12 middle (9 = MCP), 13-16 ring, 17-20 little

This is the COCO-WholeBody-hand / OneHand10K order used by mmpose.

InterHand2.6M's order (its release, ``InterHand2.6M_*_joint_3d.json`` and the
paper's code: ``skeleton.txt``), 42 joints, right hand 0-20 then left hand
21-41, each hand tips first::

    0 thumb4 (tip), 1 thumb3, 2 thumb2, 3 thumb1, 4-7 index4..1,
    8-11 middle4..1, 12-15 ring4..1, 16-19 pinky4..1, 20 wrist

MANO's 16 regressed joints (kintree of the released model files)::

    0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb

completed with 5 fingertip vertices (thumb 745, index 317, middle 444,
ring 556, little 673) appended as joints 16-20 in the order thumb, index,
middle, ring, little.
"""
import numpy as np

__all__ = [
    'NUM_HAND_JOINTS', 'JOINT_NAMES', 'SKELETON_PARENTS', 'MANO_PARENTS',
    'MANO_FINGERTIP_VERTEX_IDS', 'MANO_TO_HAND21', 'INTERHAND_TO_HAND21',
    'HAND21_TO_INTERHAND', 'interhand_to_hand21', 'hand21_to_interhand',
    'ROOT_JOINT', 'MIDDLE_MCP'
]

NUM_HAND_JOINTS = 21
ROOT_JOINT = 0
MIDDLE_MCP = 9

JOINT_NAMES = (
    'wrist',
    'thumb1', 'thumb2', 'thumb3', 'thumb4',
    'index1', 'index2', 'index3', 'index4',
    'middle1', 'middle2', 'middle3', 'middle4',
    'ring1', 'ring2', 'ring3', 'ring4',
    'little1', 'little2', 'little3', 'little4',
)  # yapf: disable

#: parent of each joint in the wrist-first order (-1 for the root)
SKELETON_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15,
                    0, 17, 18, 19)

#: MANO kinematic tree (parents of the 16 regressed joints)
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: thumb, index, middle, ring, little fingertip vertex ids of MANO's topology
MANO_FINGERTIP_VERTEX_IDS = (745, 317, 444, 556, 673)

#: index into ``concat(mano_joints16, fingertip_vertices5)`` for each of the
#: 21 wrist-first joints
MANO_TO_HAND21 = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19,
                  7, 8, 9, 20)

#: index into one InterHand2.6M hand (21 joints, tips first, wrist 20) for
#: each of the 21 wrist-first joints
INTERHAND_TO_HAND21 = (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13,
                       12, 19, 18, 17, 16)
#: the inverse permutation
HAND21_TO_INTERHAND = tuple(
    int(i) for i in np.argsort(np.asarray(INTERHAND_TO_HAND21)))


def interhand_to_hand21(joints):
    """Convert InterHand2.6M joints to the wrist-first two-hand layout.

    Args:
        joints (np.ndarray | Tensor): ``(..., 42, D)`` (right 0-20, left
            21-41) or ``(..., 21, D)`` for one hand.

    Returns:
        Same type: ``(..., 2, 21, D)`` with hand axis 0 = right, 1 = left, or
        ``(..., 21, D)`` for a single hand.
    """
    n = joints.shape[-2]
    idx = list(INTERHAND_TO_HAND21)
    if n == NUM_HAND_JOINTS:
        return joints[..., idx, :]
    if n == 2 * NUM_HAND_JOINTS:
        out = joints[..., idx + [i + NUM_HAND_JOINTS for i in idx], :]
        return out.reshape(*joints.shape[:-2], 2, NUM_HAND_JOINTS,
                           joints.shape[-1])
    raise ValueError('interhand_to_hand21 expects 21 or 42 joints on the '
                     f'second-to-last axis, got shape {tuple(joints.shape)}')


def hand21_to_interhand(joints):
    """Inverse of :func:`interhand_to_hand21` for two hands.

    Args:
        joints (np.ndarray | Tensor): ``(..., 2, 21, D)``, hand axis 0 = right.

    Returns:
        Same type: ``(..., 42, D)`` in InterHand2.6M order (right 0-20, left
        21-41). For a single hand index first: ``joints[..., list(
        HAND21_TO_INTERHAND), :]``.
    """
    if joints.ndim < 3 or tuple(joints.shape[-3:-1]) != (2, NUM_HAND_JOINTS):
        raise ValueError('hand21_to_interhand expects (..., 2, 21, D), got '
                         f'shape {tuple(joints.shape)}')
    out = joints[..., list(HAND21_TO_INTERHAND), :]
    return out.reshape(*out.shape[:-3], 2 * NUM_HAND_JOINTS, out.shape[-1])
