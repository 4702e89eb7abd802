# Copyright (c) mmhand2p contributors. All rights reserved.
from .base import PRIORS, BasePriorTeacher, check_teacher_checkpoint
from .teachers import (SAPIENS_ARCHS, ExportedTeacher, PriorNet,
                       SapiensTeacher, SyntheticWorldTeacher)
from .trainer import PriorTeacherTrainer, joint_heatmaps

__all__ = [
    'BasePriorTeacher', 'PRIORS', 'check_teacher_checkpoint', 'SapiensTeacher',
    'ExportedTeacher', 'SyntheticWorldTeacher', 'PriorNet', 'SAPIENS_ARCHS',
    'PriorTeacherTrainer', 'joint_heatmaps'
]
