# Copyright (c) mmhand2p contributors. All rights reserved.
from .interhand26m import InterHand26MDataset

__all__ = ['InterHand26MDataset']
