# Copyright (c) mmhand2p contributors. All rights reserved.
from .hand_data_sample import (HAND_FIELDS, HAND_SIDES, INSTANCE_FIELDS,
                               META_FIELDS, PRED_HAND_FIELDS, HandDataSample,
                               hand_instances, stack_field)

__all__ = [
    'HandDataSample', 'HAND_FIELDS', 'PRED_HAND_FIELDS', 'INSTANCE_FIELDS',
    'META_FIELDS', 'HAND_SIDES', 'stack_field', 'hand_instances'
]
