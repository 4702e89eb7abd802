# Copyright (c) mmhand2p contributors. All rights reserved.
"""Visualisation: the CPU mesh renderer (numpy only) and the two-hand
visualizer (an mmengine ``Visualizer``)."""
from .local_visualizer import (TwoHandLocalVisualizer, drawing_camera,
                               penetrating_vertices, project_to_image,
                               side_view_camera)
from .renderer import (DEFAULT_MESH_COLORS, RenderOutput, render_meshes,
                       vertex_normals)

__all__ = [
    'render_meshes', 'RenderOutput', 'vertex_normals', 'DEFAULT_MESH_COLORS',
    'TwoHandLocalVisualizer', 'drawing_camera', 'project_to_image',
    'side_view_camera', 'penetrating_vertices'
]
