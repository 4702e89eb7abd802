# Copyright (c) mmhand2p contributors. All rights reserved.
from .base import BaseTwoHandReconstructor, RefineMask, refine_mask
from .detect_reconstruct import DetectThenReconstruct, merge_part_checkpoints
from .handwise import HandwiseMANOHead, HandwiseTopDownReconstructor
from .pairing import pair_hands
from .top_down import TopDownTwoHandReconstructor

__all__ = [
    'BaseTwoHandReconstructor', 'RefineMask', 'refine_mask',
    'TopDownTwoHandReconstructor', 'DetectThenReconstruct',
    'merge_part_checkpoints', 'pair_hands', 'HandwiseTopDownReconstructor',
    'HandwiseMANOHead'
]
