# Copyright (c) mmhand2p contributors. All rights reserved.
from .detection import init_detector
from .inference import (build_batch, inference_image, inference_images,
                        init_model, mesh_faces)
from .inference_model import build_inference_model, inference_model_cfg
from .inferencer import (Hand2PInferencer, build_visualizer, draw_overlay,
                         draw_side_view, prediction_to_dict)
from .io import load_image, load_result_schema, validate_result, write_obj

__all__ = [
    'init_detector', 'build_inference_model', 'inference_model_cfg',
    'init_model', 'inference_image', 'inference_images', 'build_batch',
    'mesh_faces', 'Hand2PInferencer', 'build_visualizer',
    'prediction_to_dict', 'draw_overlay',
    'draw_side_view', 'load_image', 'load_result_schema', 'validate_result',
    'write_obj'
]
