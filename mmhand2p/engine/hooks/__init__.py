# Copyright (c) mmhand2p contributors. All rights reserved.
from .visualization_hook import TwoHandVisualizationHook

__all__ = ['TwoHandVisualizationHook']
