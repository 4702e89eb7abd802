# Copyright (c) mmhand2p contributors. All rights reserved.
from .fusion_alignment import FusionAlignmentNeck

__all__ = ['FusionAlignmentNeck']
