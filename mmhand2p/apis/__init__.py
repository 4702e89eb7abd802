# Copyright (c) mmhand2p contributors. All rights reserved.
from .detection import init_detector
from .inference_model import build_inference_model, inference_model_cfg

__all__ = ['init_detector', 'build_inference_model', 'inference_model_cfg']
