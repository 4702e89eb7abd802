# Copyright (c) mmhand2p contributors. All rights reserved.
"""Old import path of :mod:`mmhand2p.geometry.mesh` (kept for users)."""
from mmhand2p.geometry.mesh import (boundary_loops, cap_boundary_loops,
                                    edge_face_counts, euler_characteristic,
                                    signed_volume)

__all__ = [
    'edge_face_counts', 'boundary_loops', 'cap_boundary_loops',
    'signed_volume', 'euler_characteristic'
]
