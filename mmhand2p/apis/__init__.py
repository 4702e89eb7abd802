# Copyright (c) mmhand2p contributors. All rights reserved.
from .detection import init_detector

__all__ = ['init_detector']
