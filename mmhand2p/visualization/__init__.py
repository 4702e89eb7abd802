# Copyright (c) mmhand2p contributors. All rights reserved.
"""Visualisation helpers (numpy only, no OpenMMLab imports)."""
from .renderer import (DEFAULT_MESH_COLORS, RenderOutput, render_meshes,
                       vertex_normals)

__all__ = [
    'render_meshes', 'RenderOutput', 'vertex_normals', 'DEFAULT_MESH_COLORS'
]
