# Copyright (c) mmhand2p contributors. All rights reserved.
"""Building mmdet hand detectors without losing mmhand2p's default scope."""
from typing import Optional, Union

from mmengine.config import Config
from torch import nn

from mmhand2p.utils.setup_env import keep_default_scope

__all__ = ['init_detector']


def init_detector(config: Union[str, Config, dict],
                  checkpoint: Optional[str] = None,
                  device: str = 'cpu',
                  cfg_options: Optional[dict] = None) -> nn.Module:
    """``mmdet.apis.init_detector`` that leaves the default scope as it was.

    mmdet's ``init_detector`` sets the global default scope to the config's
    ``default_scope`` (``'mmdet'``), after which configs without a scope
    prefix no longer resolve to mmhand2p components. This wrapper restores
    the scope that was current before the call.

    Args:
        config (str | Config | dict): detector config (file or object).
        checkpoint (str, optional): checkpoint path.
        device (str): e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options (dict, optional): overrides merged into the config.

    Returns:
        nn.Module: the detector in eval mode.
    """
    from mmdet.apis import init_detector as mmdet_init_detector
    if isinstance(config, dict) and not isinstance(config, Config):
        config = Config(config)
    with keep_default_scope():
        return mmdet_init_detector(
            config, checkpoint, device=device, cfg_options=cfg_options)
