# Copyright (c) mmhand2p contributors. All rights reserved.
from .checkpoint import register_checkpoint_safe_globals
from .hooks import TwoHandVisualizationHook
from .optim_wrappers import BF16AutocastOptimWrapper

register_checkpoint_safe_globals()

__all__ = [
    'register_checkpoint_safe_globals', 'TwoHandVisualizationHook',
    'BF16AutocastOptimWrapper'
]
