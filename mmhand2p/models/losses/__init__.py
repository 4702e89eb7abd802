# Copyright (c) mmhand2p contributors. All rights reserved.
from .regression import MaskedL1Loss, MaskedMSELoss

__all__ = ['MaskedL1Loss', 'MaskedMSELoss']
