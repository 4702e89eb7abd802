# Copyright (c) mmhand2p contributors. All rights reserved.
"""Evaluation: pure metric math (``functional``) and mmengine metrics with
named protocols (``metrics``); see ``docs/evaluation.md``."""
from .functional import *  # noqa: F401,F403
from .metrics import (PROTOCOLS, EvalProtocol, PenetrationMetric,
                      RefinerPairMetric, TwoHandMetric, get_protocol)

__all__ = [
    'TwoHandMetric', 'PenetrationMetric', 'EvalProtocol', 'PROTOCOLS',
    'get_protocol', 'RefinerPairMetric'
]
