# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pure metric math: keypoint/vertex errors, aggregation rules and
penetration (PenVol with manifold3d, PenDist batched in torch)."""
from .aggregation import (AGGREGATIONS, aggregate, hand_average,
                          mean_of_per_joint_means, per_joint_means,
                          pooled_mean)
from .keypoint_eval import (AXES, auc, bone_length_scale, masked_mean, mpjpe,
                            mrrpe, pck, pck_curve_auc, point_errors,
                            procrustes_aligned_errors, projected_point_errors,
                            regress_joints, relative_root, root_aligned_errors)
from .penetration import (MeshTopology, VolumeWorkerPool, cap_holes,
                          check_closed_mesh, closed_hand_faces,
                          closest_points_on_mesh, default_num_workers,
                          intersection_volume, penetration_depth,
                          penetration_volume, point_mesh_signed_distance,
                          winding_numbers)

__all__ = [
    'AGGREGATIONS', 'aggregate', 'hand_average', 'mean_of_per_joint_means',
    'per_joint_means', 'pooled_mean', 'AXES', 'auc', 'bone_length_scale',
    'masked_mean', 'mpjpe', 'mrrpe', 'pck', 'pck_curve_auc', 'point_errors',
    'procrustes_aligned_errors', 'projected_point_errors', 'regress_joints',
    'relative_root', 'root_aligned_errors', 'MeshTopology', 'VolumeWorkerPool',
    'cap_holes', 'check_closed_mesh', 'closed_hand_faces',
    'closest_points_on_mesh', 'default_num_workers', 'intersection_volume',
    'penetration_depth', 'penetration_volume', 'point_mesh_signed_distance',
    'winding_numbers'
]
