# Copyright (c) mmhand2p contributors. All rights reserved.
"""Moved to :mod:`mmhand2p.utils.feature_cache` (the data transform
``LoadPriorFeatures`` reads the cache, and ``datasets/`` must not import
``mmhand2p.models``); this name stays for old imports."""
from mmhand2p.utils.feature_cache import *  # noqa: F401,F403
from mmhand2p.utils.feature_cache import __all__  # noqa: F401
from mmhand2p.utils.feature_cache import (INDEX_FILE, VARIANTS,  # noqa: F401
                                          now_iso)
