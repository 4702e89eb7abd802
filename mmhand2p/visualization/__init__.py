# Copyright (c) mmhand2p contributors. All rights reserved.
"""Visualisation: the CPU mesh renderer (numpy only) and the two-hand
visualizer (an mmengine ``Visualizer``)."""
from .image_panels import (BOX_COLORS, box_label_layout, draw_mesh_overlay,
                           draw_side_panel, place_labels, scaled_intrinsics,
                           vis_scale)
from .local_visualizer import (IMAGE_PANELS, TwoHandLocalVisualizer,
                               drawing_camera, penetrating_vertices,
                               project_to_image, side_view_camera)
from .renderer import (DEFAULT_MESH_COLORS, RenderOutput, render_meshes,
                       vertex_normals)

__all__ = [
    'render_meshes', 'RenderOutput', 'vertex_normals', 'DEFAULT_MESH_COLORS',
    'TwoHandLocalVisualizer', 'drawing_camera', 'project_to_image',
    'side_view_camera', 'penetrating_vertices', 'IMAGE_PANELS',
    'draw_mesh_overlay', 'draw_side_panel', 'place_labels',
    'box_label_layout', 'vis_scale', 'scaled_intrinsics', 'BOX_COLORS'
]
