# Copyright (c) mmhand2p contributors. All rights reserved.
from mmhand2p.conventions import (HAND21_TO_INTERHAND, INTERHAND_TO_HAND21,
                                  JOINT_NAMES, MANO_FINGERTIP_VERTEX_IDS,
                                  MANO_PARENTS, MANO_TO_HAND21, MIDDLE_MCP,
                                  NUM_HAND_JOINTS, REQUIRED_KEYS, ROOT_JOINT,
                                  SKELETON_PARENTS, ManoFileError,
                                  bundled_mano_dir, convert_mano_file,
                                  fix_left_shapedirs, hand21_to_interhand,
                                  interhand_to_hand21, load_mano_file,
                                  resolve_mano_path)
from .mano_layer import MANOLayer, MANOOutput

__all__ = [
    'MANOLayer', 'MANOOutput', 'load_mano_file', 'convert_mano_file',
    'fix_left_shapedirs', 'resolve_mano_path', 'bundled_mano_dir',
    'ManoFileError', 'REQUIRED_KEYS', 'JOINT_NAMES', 'NUM_HAND_JOINTS',
    'ROOT_JOINT', 'MIDDLE_MCP', 'SKELETON_PARENTS', 'MANO_PARENTS',
    'MANO_FINGERTIP_VERTEX_IDS', 'MANO_TO_HAND21', 'INTERHAND_TO_HAND21',
    'HAND21_TO_INTERHAND', 'interhand_to_hand21', 'hand21_to_interhand'
]
