# Copyright (c) mmhand2p contributors. All rights reserved.
from .detect_reconstruct import DetectThenReconstruct, merge_part_checkpoints
from .pairing import pair_hands
from .top_down import TopDownTwoHandReconstructor

__all__ = [
    'TopDownTwoHandReconstructor', 'DetectThenReconstruct',
    'merge_part_checkpoints', 'pair_hands'
]
