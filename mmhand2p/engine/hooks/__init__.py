# Copyright (c) mmhand2p contributors. All rights reserved.
from .checkpoint_hook import (AtomicLocalBackend, NonFiniteCheckpointError,
                              SafeCheckpointHook)
from .finite_check import FiniteLossHook, NonFiniteLossError
from .visualization_hook import TwoHandVisualizationHook

__all__ = [
    'TwoHandVisualizationHook', 'SafeCheckpointHook', 'AtomicLocalBackend',
    'NonFiniteCheckpointError', 'FiniteLossHook', 'NonFiniteLossError'
]
