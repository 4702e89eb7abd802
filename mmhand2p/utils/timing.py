# Copyright (c) mmhand2p contributors. All rights reserved.
"""Wall time of a model's stages: the one mechanism behind the per-sample
metainfo ``stage_times_ms``.

Models that time their stages write ``stage_times_ms`` (a dict ``{stage:
milliseconds or None}``) into the metainfo of every data sample they
return: the wall time of the whole ``predict`` call per stage, the same
dict in every sample of the batch. ``TopDownTwoHandReconstructor`` writes
``reconstruction`` and ``refinement``; ``DetectThenReconstruct`` adds
``detector``; a stage that did not run is None (e.g. ``refinement`` with
the refiner off). The inferencer and the speed benchmarks read this field.
"""
import time
from typing import Dict, Optional

import torch

__all__ = ['StageTimer']


class StageTimer:
    """A lap clock in milliseconds; CUDA work is synchronised before each
    reading, so a lap holds the GPU time of its stage too.

    Example::

        timer = StageTimer(inputs.device)
        ...  # stage 1
        timer.lap('reconstruction')
        ...  # refinement
        timer.lap('refinement')
        timer.times  # {'reconstruction': ..., 'refinement': ...}

    Args:
        device (torch.device | str, optional): where the timed work runs
            (CUDA devices are synchronised).
    """

    def __init__(self, device=None) -> None:
        self.cuda = device is not None and torch.device(device).type == 'cuda'
        self.times: Dict[str, float] = {}
        self._t = self._now()

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, stage: Optional[str]) -> float:
        """Charge the time since the previous lap to ``stage`` (added to
        what it had; None: not charged to any stage).

        Returns:
            float: the lap's milliseconds.
        """
        t = self._now()
        ms = 1000.0 * (t - self._t)
        self._t = t
        if stage is not None:
            self.times[stage] = self.times.get(stage, 0.0) + ms
        return ms
