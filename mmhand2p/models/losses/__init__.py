# Copyright (c) mmhand2p contributors. All rights reserved.
from .collision import (CollisionResult, HybridCollisionLoss,
                        InsideCollisionLoss, hybrid_collision,
                        inside_collision, vertex_normals)
from .regression import MaskedL1Loss, MaskedMSELoss

__all__ = [
    'MaskedL1Loss', 'MaskedMSELoss', 'HybridCollisionLoss',
    'InsideCollisionLoss', 'CollisionResult', 'hybrid_collision',
    'inside_collision', 'vertex_normals'
]
