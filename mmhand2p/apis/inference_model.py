# Copyright (c) mmhand2p contributors. All rights reserved.
"""The inference model of a config: what is deployed, without the
training-only prior teachers."""
from mmengine.config import Config

# the config rewrite lives with the other config helpers (models use it);
# re-exported here
from mmhand2p.utils.config_parts import TEACHER_KEYS  # noqa: F401
from mmhand2p.utils.config_parts import inference_model_cfg

__all__ = ['inference_model_cfg', 'build_inference_model', 'TEACHER_KEYS']


def build_inference_model(cfg: Config, test_mode: bool = True):
    """``cfg.model`` built in the config's default scope, in eval mode.

    Args:
        cfg (Config): the config.
        test_mode (bool): build :func:`inference_model_cfg` of the model.

    Returns:
        tuple: the model and the notes of :func:`inference_model_cfg`.
    """
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmhand2p'))
    model_cfg, notes = cfg.model, []
    if test_mode:
        model_cfg, notes = inference_model_cfg(cfg.model)
    model = MODELS.build(model_cfg)
    model.eval()
    return model, notes
