# Copyright (c) mmhand2p contributors. All rights reserved.
"""Two-hand data transforms (``docs/data_pipeline.md``).

Order of a training pipeline: ``LoadTwoHandImage`` -> ``RandomTwoHandFlip``
-> ``TwoHandCropAffine`` -> ``ColorJitter`` / ``MotionBlur`` ->
``GenerateTwoHandTargets`` -> ``PackTwoHandInputs``. The flip must come
before the crop (the crop composes the pending image flip into its warp).
"""
from .detection import HandednessFlip
from .formatting import (TARGET_FIELDS, GenerateTwoHandTargets,
                         PackTwoHandInputs, left_as_right, mirror_left_points,
                         right_as_left)
from .full_image import PackFullImageInputs
from .geometric import (RandomTwoHandFlip, TwoHandCropAffine, apply_affine,
                        compose_affine, crop_camera, flip_affine,
                        flip_two_hands, invert_affine, rot_z_matrix,
                        union_hand_box)
from .handwise import HandwiseCropAffine, PackHandwiseInputs
from .loading import LoadPriorMaps, LoadTwoHandImage
from .photometric import ColorJitter, MotionBlur
from .prior_features import LoadPriorFeatures

__all__ = [
    'LoadTwoHandImage', 'LoadPriorMaps', 'RandomTwoHandFlip',
    'TwoHandCropAffine',
    'ColorJitter', 'MotionBlur', 'GenerateTwoHandTargets', 'PackTwoHandInputs',
    'left_as_right', 'right_as_left', 'mirror_left_points', 'TARGET_FIELDS',
    'crop_camera', 'rot_z_matrix', 'flip_affine', 'flip_two_hands',
    'apply_affine', 'compose_affine', 'invert_affine', 'union_hand_box',
    'PackFullImageInputs', 'HandednessFlip', 'LoadPriorFeatures',
    'HandwiseCropAffine', 'PackHandwiseInputs'
]
