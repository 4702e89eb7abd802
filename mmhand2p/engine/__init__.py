# Copyright (c) mmhand2p contributors. All rights reserved.
from .checkpoint import (checkpoint_is_complete, latest_complete_checkpoint,
                         register_checkpoint_safe_globals)
from .hooks import (FiniteLossHook, NonFiniteCheckpointError,
                    NonFiniteLossError, SafeCheckpointHook,
                    TwoHandVisualizationHook)
from .optim_wrappers import BF16AutocastOptimWrapper

register_checkpoint_safe_globals()

__all__ = [
    'register_checkpoint_safe_globals', 'checkpoint_is_complete',
    'latest_complete_checkpoint', 'TwoHandVisualizationHook',
    'SafeCheckpointHook', 'NonFiniteCheckpointError', 'FiniteLossHook',
    'NonFiniteLossError', 'BF16AutocastOptimWrapper'
]
