# Copyright (c) mmhand2p contributors. All rights reserved.
"""Pure mesh geometry shared by the body model, losses, refiners, metrics,
the visualizer and the synthetic hand model: topology and hole capping
(:mod:`.mesh`), closest points, winding numbers and signed distances
(:mod:`.distance`, torch), exact intersection volumes (:mod:`.intersection`,
manifold3d), face and vertex normals (:mod:`.normals`). Rotations, flips,
projection and Procrustes live in :mod:`mmhand2p.utils.geometry` (the same,
lowest layer)."""
from .distance import (closest_points_on_mesh, closest_points_on_triangles,
                       point_mesh_signed_distance, winding_numbers)
from .intersection import intersection_volume, intersection_volumes
from .mesh import (MeshTopology, boundary_loops, cap_boundary_loops, cap_holes,
                   check_closed_mesh, closed_hand_faces, edge_face_counts,
                   euler_characteristic, signed_volume)
from .normals import face_vertex_normals, vertex_normals

__all__ = [
    'MeshTopology', 'boundary_loops', 'cap_boundary_loops', 'cap_holes',
    'check_closed_mesh', 'closed_hand_faces', 'edge_face_counts',
    'euler_characteristic', 'signed_volume', 'closest_points_on_triangles',
    'closest_points_on_mesh', 'winding_numbers', 'point_mesh_signed_distance',
    'intersection_volume', 'intersection_volumes', 'vertex_normals',
    'face_vertex_normals'
]
