# Copyright (c) mmhand2p contributors. All rights reserved.
from .top_down import TopDownTwoHandReconstructor

__all__ = ['TopDownTwoHandReconstructor']
