# Copyright (c) mmhand2p contributors. All rights reserved.
from .base import PRIORS, BasePriorTeacher, check_teacher_checkpoint
from .feature_cache import (PriorFeatureCache, PriorFeatureCacheWriter,
                            relative_crop_theta, teacher_config_hash,
                            warp_feature_maps)
from .teachers import (SAPIENS_ARCHS, ExportedTeacher, PriorNet,
                       SapiensTeacher, SyntheticWorldTeacher)
from .trainer import PriorTeacherTrainer, joint_heatmaps

__all__ = [
    'BasePriorTeacher', 'PRIORS', 'check_teacher_checkpoint', 'SapiensTeacher',
    'ExportedTeacher', 'SyntheticWorldTeacher', 'PriorNet', 'SAPIENS_ARCHS',
    'PriorTeacherTrainer', 'joint_heatmaps', 'PriorFeatureCache',
    'PriorFeatureCacheWriter', 'relative_crop_theta', 'teacher_config_hash',
    'warp_feature_maps'
]
