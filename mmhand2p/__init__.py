# Copyright (c) mmhand2p contributors. All rights reserved.
"""mmhand2p: monocular two-hand 3D reconstruction for OpenMMLab 2.x."""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
