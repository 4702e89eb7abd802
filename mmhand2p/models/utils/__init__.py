# Copyright (c) mmhand2p contributors. All rights reserved.
from .positional_encoding import sine_position_encoding

__all__ = ['sine_position_encoding']
