# Copyright (c) mmhand2p contributors. All rights reserved.
from .interhand26m import InterHand26MDataset
from .interhand_writer import InterHandFormatWriter
from .penetration_pairs import PenetrationPairsDataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'InterHand26MDataset', 'InterHandFormatWriter', 'PenetrationPairsDataset'
]
