# Copyright (c) mmhand2p contributors. All rights reserved.
from .checkpoint import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

__all__ = ['register_checkpoint_safe_globals']
