# Copyright (c) mmhand2p contributors. All rights reserved.
"""mmengine metrics (registered in ``METRICS``) and evaluation protocols."""
from .penetration_metric import PenetrationMetric
from .prior_teacher_metric import PriorTeacherMetric
from .protocols import PROTOCOLS, EvalProtocol, get_protocol
from .refiner_pair_metric import RefinerPairMetric
from .two_hand_metric import TwoHandMetric

__all__ = [
    'PriorTeacherMetric',
    'TwoHandMetric', 'PenetrationMetric', 'EvalProtocol', 'PROTOCOLS',
    'get_protocol', 'RefinerPairMetric'
]
