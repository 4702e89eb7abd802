# Copyright (c) mmhand2p contributors. All rights reserved.
"""Test-time refiners of predicted hands (A2P stage 2)."""
from .denoiser import TimestepEmbedder, TwoHandDenoiser, timestep_encoding
from .gating import TwoHandGate, box_iou, boxes_from_points
from .pairs import PAIR_FIELDS, PAIR_KINDS, load_pairs, save_pairs
from .sampler import GuidedDDIMSampler, ddim_step, standard_normal
from .schedule import CosineNoiseSchedule, cosine_alpha_bar
from .two_hand_diffusion import (TwoHandDiffusionRefiner, TwoHandParams,
                                 condition_noise_keys, content_noise_key,
                                 decode_two_hands, encode_two_hands,
                                 load_param_stats, noise_key_from_metainfo,
                                 param_dims, sample_seed)

__all__ = [
    'TwoHandDiffusionRefiner', 'TwoHandDenoiser', 'TimestepEmbedder',
    'timestep_encoding', 'CosineNoiseSchedule', 'cosine_alpha_bar',
    'GuidedDDIMSampler', 'ddim_step', 'standard_normal', 'TwoHandGate',
    'box_iou', 'boxes_from_points', 'TwoHandParams', 'encode_two_hands',
    'decode_two_hands', 'param_dims', 'load_param_stats',
    'save_pairs', 'load_pairs',
    'PAIR_FIELDS', 'PAIR_KINDS', 'sample_seed', 'noise_key_from_metainfo',
    'content_noise_key', 'condition_noise_keys'
]
