# Copyright (c) mmhand2p contributors. All rights reserved.
from .two_hand_mano_head import TwoHandMANOHead

__all__ = ['TwoHandMANOHead']
