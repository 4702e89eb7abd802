# Copyright (c) mmhand2p contributors. All rights reserved.
"""Mixed precision without a loss scaler (bfloat16 autocast, CPU included).

mmengine's ``AmpOptimWrapper`` asserts that a GPU (or NPU/MLU/MUSA) is
present, because it always builds a CUDA ``GradScaler``. CPU autocast only
supports ``torch.bfloat16``, whose exponent range equals float32's, so it
needs no loss scaling at all: :class:`BF16AutocastOptimWrapper` is the plain
``OptimWrapper`` run under ``autocast(dtype=bfloat16)``. ``tools/train.py
--amp`` falls back to it when no CUDA device is available.
"""
from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmhand2p.registry import OPTIM_WRAPPERS

__all__ = ['BF16AutocastOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under autocast, no scaler.

    Args:
        dtype (str | torch.dtype): the autocast dtype. CPU autocast accepts
            only ``'bfloat16'`` (the default). float16 needs loss scaling:
            use mmengine's ``AmpOptimWrapper`` on GPUs for it.
        device_type (str, optional): ``'cpu'``, ``'cuda'``...; None uses the
            device mmengine runs on (``mmengine.device.get_device()``).
        **kwargs: the arguments of ``OptimWrapper`` (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 device_type: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f'BF16AutocastOptimWrapper: unknown dtype '
                                 f'{dtype!r}; use "bfloat16"')
            dtype = getattr(torch, dtype)
        if dtype == torch.float16:
            raise ValueError(
                'BF16AutocastOptimWrapper: float16 needs loss scaling; use '
                "mmengine's AmpOptimWrapper (GPU) for float16")
        self.cast_dtype = dtype
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context of ``OptimWrapper`` + autocast."""
        from mmengine.runner.amp import autocast
        with super().optim_context(model), autocast(
                device_type=self.device_type, dtype=self.cast_dtype):
            yield
