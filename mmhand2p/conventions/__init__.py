# Copyright (c) mmhand2p contributors. All rights reserved.
"""Conventions every component agrees on: joint orders, the skeleton,
MANO's fingertip ids and the MANO file loader (neutral: imports only
``mmhand2p.utils``)."""
from .joints import (HAND21_TO_INTERHAND, INTERHAND_TO_HAND21, JOINT_NAMES,
                     MANO_FINGERTIP_VERTEX_IDS, MANO_PARENTS, MANO_TO_HAND21,
                     MIDDLE_MCP, NUM_HAND_JOINTS, ROOT_JOINT, SKELETON_PARENTS,
                     hand21_to_interhand, interhand_to_hand21)
from .mano_io import (REQUIRED_KEYS, ManoFileError, bundled_mano_dir,
                      convert_mano_file, fix_left_shapedirs, load_mano_file,
                      resolve_mano_path)

__all__ = [
    'load_mano_file', 'convert_mano_file', 'fix_left_shapedirs',
    'resolve_mano_path', 'bundled_mano_dir', 'ManoFileError',
    'REQUIRED_KEYS', 'JOINT_NAMES', 'NUM_HAND_JOINTS', 'ROOT_JOINT',
    'MIDDLE_MCP', 'SKELETON_PARENTS', 'MANO_PARENTS',
    'MANO_FINGERTIP_VERTEX_IDS', 'MANO_TO_HAND21', 'INTERHAND_TO_HAND21',
    'HAND21_TO_INTERHAND', 'interhand_to_hand21', 'hand21_to_interhand'
]
