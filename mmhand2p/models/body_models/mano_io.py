# Copyright (c) mmhand2p contributors. All rights reserved.
"""Old import path of :mod:`mmhand2p.conventions.mano_io` (kept for users)."""
from mmhand2p.conventions.mano_io import *  # noqa: F401,F403
from mmhand2p.conventions.mano_io import __all__  # noqa: F401
