# Copyright (c) mmhand2p contributors. All rights reserved.
"""The registries of mmhand2p: the one place that defines them.

Every registry is a child of the matching mmengine root, so components of
other OpenMMLab projects (``mmpose.ResNet``, ``mmdet.RTMDet``...) build from an
mmhand2p-scoped config by prefixing their scope, and mmhand2p components
register here with ``@MODELS.register_module()``. ``locations`` lists the
modules that register into each registry; they are imported lazily by
mmengine the first time the registry is used in the ``mmhand2p`` scope.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import \
    RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry as _MMEngineRegistry
from mmengine.registry import build_from_cfg

from .utils.registry_hints import (add_close_match_hints, with_close_matches,
                                   with_optimizer_check)


def Registry(name, parent, locations=None):  # noqa: N802
    """A child of ``parent`` whose build errors suggest close names.

    ``parent`` (an mmengine root) gets the same hint: the Runner builds the
    top-level model, datasets, transforms, hooks, visualizer, optimizer
    wrapper, schedulers, metrics, loops... through the roots, which switch
    to the config's ``default_scope`` child only to look the name up. The
    hint only extends the text of mmengine's unknown-type ``KeyError``.
    """
    add_close_match_hints(parent)
    return _MMEngineRegistry(
        name,
        parent=parent,
        locations=locations,
        build_func=with_close_matches(parent.build_func))


# manage all kinds of runners like `EpochBasedRunner` and `IterBasedRunner`
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS)
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS)
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, locations=['mmhand2p.engine'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, locations=['mmhand2p.engine'])

# data: datasets, transforms, samplers
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['mmhand2p.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=MMENGINE_DATA_SAMPLERS,
    locations=['mmhand2p.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    locations=['mmhand2p.datasets.transforms'])

# models: backbones, teachers, necks, heads, refiners, losses, body models,
# reconstructors and data preprocessors
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, locations=['mmhand2p.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    locations=['mmhand2p.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMENGINE_WEIGHT_INITIALIZERS,
    locations=['mmhand2p.models'])
# box coders, samplers and other task helpers
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, locations=['mmhand2p.models'])

# target codecs shared by the pipeline's target generator and the heads
# (mmpose-style; mmengine has no root registry for them)
CODECS = _MMEngineRegistry(
    'codec',
    scope='mmhand2p',
    locations=['mmhand2p.codecs'],
    build_func=with_close_matches(build_from_cfg))

# optimisation
OPTIMIZERS = Registry(
    'optimizer',
    parent=MMENGINE_OPTIMIZERS,
    locations=['mmhand2p.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    locations=['mmhand2p.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmhand2p.engine'])
# an unknown optimizer type: mmengine's DefaultOptimWrapperConstructor gets
# None for it and fails with "None is not a callable object"; check it when
# the constructor is built (mmengine's build_optim_wrapper uses the root)
for _constructors, _optimizers in (
        (MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, MMENGINE_OPTIMIZERS),
        (OPTIM_WRAPPER_CONSTRUCTORS, OPTIMIZERS)):
    _constructors.build_func = with_optimizer_check(_constructors.build_func,
                                                    _optimizers)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMENGINE_PARAM_SCHEDULERS,
    locations=['mmhand2p.engine'])

# evaluation
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, locations=['mmhand2p.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMENGINE_EVALUATOR, locations=['mmhand2p.evaluation'])

# visualisation and logging
VISUALIZERS = Registry(
    'visualizer',
    parent=MMENGINE_VISUALIZERS,
    locations=['mmhand2p.visualization'])
VISBACKENDS = Registry(
    'vis_backend',
    parent=MMENGINE_VISBACKENDS,
    locations=['mmhand2p.visualization'])
# alias with the spelling used in the architecture notes
VIS_BACKENDS = VISBACKENDS
LOG_PROCESSORS = Registry(
    'log_processor',
    parent=MMENGINE_LOG_PROCESSORS,
    locations=['mmhand2p.engine'])

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'CODECS', 'OPTIMIZERS',
    'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
    'METRICS', 'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS', 'VIS_BACKENDS',
    'LOG_PROCESSORS'
]
