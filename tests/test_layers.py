# Copyright (c) mmhand2p contributors. All rights reserved.
"""No import runs up a layer (the order of ``mmhand2p/_layers.py``, which
docs/architecture.md writes down under "Layers").

Every module under ``mmhand2p/`` is parsed with ``ast``: absolute and
relative imports, at module level and inside functions. An import of a
module in a higher layer, or of a side-by-side package (models, evaluation,
datasets import none of each other), is a back-arrow; the test lists every
one as ``file:line -> imported module``.
"""
import ast
import os.path as osp
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from mmhand2p._layers import (ALLOWED_IMPORTS, LAYERS, SIDE_BY_SIDE, layer_of,
                              package_of)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mmhand2p'


def module_name(path: Path, root: Path = ROOT) -> str:
    """``mmhand2p/models/__init__.py`` -> ``mmhand2p.models``."""
    parts = list(path.relative_to(root).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def imported_modules(source: str, module: str,
                     is_package: bool) -> Iterator[Tuple[int, str]]:
    """``(line, absolute dotted name)`` of every import in ``source``.

    ``from a import b`` yields ``a.b`` (``b`` may be a submodule); relative
    imports are resolved against ``module``.
    """
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                prefix = '.'.join(base + ([node.module]
                                          if node.module else []))
            else:
                prefix = node.module
            for alias in node.names:
                yield node.lineno, f'{prefix}.{alias.name}'


def back_arrows(source: str, module: str, is_package: bool,
                where: str) -> List[str]:
    """Every import of ``source`` that runs up a layer or sideways."""
    own_pkg = package_of(module)
    own = layer_of(module)
    found = []
    for line, target in imported_modules(source, module, is_package):
        pkg = package_of(target)
        if pkg is None or pkg == own_pkg or pkg == '':
            continue
        if (module, pkg) in ALLOWED_IMPORTS:
            continue
        other = layer_of(target)
        if other is None:
            found.append(f'{where}:{line} -> {target} (package {pkg!r} is '
                         'in no layer of mmhand2p/_layers.py)')
        elif other > own:
            found.append(f'{where}:{line} -> {target} (layer {other} '
                         f'{LAYERS[other]} above layer {own} {LAYERS[own]})')
        elif other == own and {own_pkg, pkg} <= SIDE_BY_SIDE:
            found.append(f'{where}:{line} -> {target} ({own_pkg} and {pkg} '
                         'are side by side)')
    return found


def _modules():
    return sorted(PACKAGE.rglob('*.py'))


def test_every_package_has_a_layer():
    missing = sorted({
        package_of(module_name(p))
        for p in _modules() if layer_of(module_name(p)) is None
    })
    assert not missing, (f'add {missing} to LAYERS in mmhand2p/_layers.py '
                         'and to docs/architecture.md')


def test_no_import_runs_up_a_layer():
    found = []
    for path in _modules():
        module = module_name(path)
        found += back_arrows(
            path.read_text(encoding='utf-8'), module,
            path.name == '__init__.py', osp.relpath(path, ROOT))
    assert not found, 'imports against the layer order:\n' + '\n'.join(found)


@pytest.mark.parametrize(
    'module,source,expected',
    [
        # a dataset reaching into models (side by side)
        ('mmhand2p.datasets.fake', 'import numpy\n'
         'from mmhand2p.models.body_models import MANOLayer\n',
         ['fake.py:2 -> mmhand2p.models.body_models.MANOLayer '
          "(datasets and models are side by side)"]),
        # geometry (layer 0) importing the visualizer, inside a function
        ('mmhand2p.geometry.fake', 'def f():\n'
         '    from mmhand2p.visualization import render_meshes\n',
         ['fake.py:2 -> mmhand2p.visualization.render_meshes (layer 3 '
          "('visualization',) above layer 0 " + str(LAYERS[0]) + ')']),
        # a relative import two levels up into engine
        ('mmhand2p.models.refiners.fake', 'from ...engine import x\n',
         ['fake.py:1 -> mmhand2p.engine.x (layer 5 '
          "('engine',) above layer 2 ('models', 'evaluation', "
          "'datasets'))"]),
        # allowed: a lower layer, the own package, foreign packages
        ('mmhand2p.visualization.fake',
         'import torch\nfrom ..geometry import mesh\n'
         'from .renderer import x\nimport mmhand2p.models\n', []),
    ])
def test_back_arrows_are_caught(module, source, expected):
    assert back_arrows(source, module, False, 'fake.py') == expected


def test_relative_import_in_package_init():
    # ``from .x import y`` in mmhand2p/models/__init__.py is mmhand2p.models.x
    got = list(imported_modules('from .heads import A\n', 'mmhand2p.models',
                                True))
    assert got == [(1, 'mmhand2p.models.heads.A')]
