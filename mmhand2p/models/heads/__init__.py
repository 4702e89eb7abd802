# Copyright (c) mmhand2p contributors. All rights reserved.
from .base_head import BaseTwoHandHead
from .two_hand_mano_head import TwoHandMANOHead

__all__ = ['BaseTwoHandHead', 'TwoHandMANOHead']
