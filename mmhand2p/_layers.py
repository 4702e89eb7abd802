# Copyright (c) mmhand2p contributors. All rights reserved.
"""The layers of mmhand2p, lowest first (docs/architecture.md, "Layers").

A module may import from its own layer and from the layers below it, never
from a layer above. Packages listed together in one layer of
:data:`SIDE_BY_SIDE` sit side by side: none imports another's modules (they
meet only through the registries and the data samples).
``tests/test_layers.py`` checks every module of the package against this
table; it is the one place that writes the order down.
"""
from typing import Dict, Optional, Tuple

__all__ = ['LAYERS', 'SIDE_BY_SIDE', 'ALLOWED_IMPORTS', 'layer_of',
           'package_of']

#: layers, lowest first; each entry names the top-level packages/modules of
#: ``mmhand2p`` in it
LAYERS: Tuple[Tuple[str, ...], ...] = (
    # pure, neutral building blocks
    ('version', '_layers', 'registry', 'structures', 'conventions',
     'geometry', 'utils'),
    # target encoding/decoding shared by the pipeline and the heads
    ('codecs', ),
    # networks | metrics | data, side by side
    ('models', 'evaluation', 'datasets'),
    # drawing (CPU mesh renderer, visualizer)
    ('visualization', ),
    # the synthetic data generator: builds hands with models' MANOLayer and
    # renders them with visualization's renderer
    ('synthetic', ),
    # runner parts: hooks, optimiser wrappers, checkpoint loading
    ('engine', ),
    # user-facing entry points: init_model, inference, Hand2PInferencer
    ('apis', ),
)

#: layers whose packages must not import each other
SIDE_BY_SIDE = frozenset({'models', 'evaluation', 'datasets'})

#: documented exceptions, ``(importing module, imported package) -> reason``;
#: none today (``utils.setup_env.register_all_modules`` imports the
#: registering packages by name through ``importlib``, as mmengine's lazy
#: registry ``locations`` do, not with an import statement)
ALLOWED_IMPORTS: Dict[Tuple[str, str], str] = {}

_RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def package_of(module: str) -> Optional[str]:
    """``'mmhand2p.models.heads.x'`` -> ``'models'``; ``None`` outside
    mmhand2p; ``''`` for the package itself (``mmhand2p/__init__.py``)."""
    parts = module.split('.')
    if parts[0] != 'mmhand2p':
        return None
    return parts[1] if len(parts) > 1 else ''


def layer_of(module: str) -> Optional[int]:
    """The layer index (0 = lowest) of a dotted mmhand2p module name;
    ``None`` for a module outside mmhand2p or a package missing from
    :data:`LAYERS` (the layer test reports those)."""
    pkg = package_of(module)
    if pkg == '':
        return 0
    return _RANK.get(pkg)
