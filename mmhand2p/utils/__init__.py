# Copyright (c) mmhand2p contributors. All rights reserved.
from .geometry import (axis_angle_to_matrix, axis_angle_to_rot6d,
                       matrix_to_axis_angle, matrix_to_quaternion,
                       matrix_to_rot6d, mirror_axis_angle, mirror_matrix,
                       mirror_points, procrustes_align, project_points,
                       quaternion_to_axis_angle, quaternion_to_matrix,
                       rot6d_to_axis_angle, rot6d_to_matrix, swap_hands)
from .setup_env import (keep_default_scope, register_all_modules,
                        set_default_scope)

__all__ = [
    'axis_angle_to_matrix', 'axis_angle_to_rot6d', 'matrix_to_axis_angle',
    'matrix_to_quaternion', 'matrix_to_rot6d', 'mirror_axis_angle',
    'mirror_matrix', 'mirror_points', 'procrustes_align', 'project_points',
    'quaternion_to_axis_angle', 'quaternion_to_matrix', 'rot6d_to_axis_angle',
    'rot6d_to_matrix', 'swap_hands', 'register_all_modules',
    'set_default_scope', 'keep_default_scope'
]
