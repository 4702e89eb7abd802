# Copyright (c) mmhand2p contributors. All rights reserved.
"""Target codecs: the encoding / decoding conventions that the data
pipeline's target generator and the heads share (mmpose-style codecs)."""
from .builder import build_codec, resolve_codec
from .two_hand_codec import (TARGET_FIELDS, TwoHandCodec, left_as_right,
                             mirror_left_points, right_as_left)

__all__ = [
    'TwoHandCodec', 'TARGET_FIELDS', 'build_codec', 'resolve_codec',
    'left_as_right', 'right_as_left', 'mirror_left_points'
]
