# Copyright (c) mmhand2p contributors. All rights reserved.
"""Moved to :mod:`mmhand2p.utils.feature_cache` (the data transform
``LoadPriorFeatures`` reads the cache, and ``datasets/`` must not import
``mmhand2p.models``); this name stays for old imports."""
from mmhand2p.utils.feature_cache import (CACHE_FORMAT,  # noqa: F401
                                          CACHE_VERSION, INDEX_FILE, VARIANTS,
                                          PriorFeatureCache,
                                          PriorFeatureCacheWriter, file_sha256,
                                          now_iso, recover_interrupted_commit,
                                          relative_crop_theta,
                                          teacher_checkpoint_hashes,
                                          teacher_config_hash,
                                          warp_feature_maps)

__all__ = [
    'CACHE_FORMAT', 'CACHE_VERSION', 'PriorFeatureCache',
    'PriorFeatureCacheWriter', 'teacher_config_hash', 'file_sha256',
    'teacher_checkpoint_hashes', 'relative_crop_theta', 'warp_feature_maps',
    'recover_interrupted_commit'
]
