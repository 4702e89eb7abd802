# Copyright (c) mmhand2p contributors. All rights reserved.
from .hand_data_sample import HAND_FIELDS, HandDataSample, stack_field

__all__ = ['HandDataSample', 'HAND_FIELDS', 'stack_field']
