# Copyright (c) mmhand2p contributors. All rights reserved.
"""Registration of all modules and default-scope handling."""
import contextlib
import importlib
import itertools
from typing import Iterator

from mmengine.registry import DefaultScope

__all__ = ['register_all_modules', 'set_default_scope', 'keep_default_scope']

#: modules whose import registers mmhand2p's components
_REGISTERING_MODULES = ('mmhand2p.engine', 'mmhand2p.models',
                        'mmhand2p.datasets', 'mmhand2p.evaluation',
                        'mmhand2p.visualization')
_counter = itertools.count()


def set_default_scope(scope: str = 'mmhand2p') -> DefaultScope:
    """Make ``scope`` the current default scope (no-op if it already is).

    mmengine's current scope is the most recently created ``DefaultScope``
    instance, and instance names must be unique, so a fresh uniquely named
    instance is created whenever another scope is current.
    """
    current = DefaultScope.get_current_instance()
    if current is not None and current.scope_name == scope:
        return current
    return DefaultScope.get_instance(
        f'{scope}-scope-{next(_counter)}', scope_name=scope)


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers mmhand2p components.

    Registries also import their ``locations`` lazily; tools and tests call
    this to make registration explicit. Importing ``mmhand2p.engine`` also
    allow-lists the globals that mmengine checkpoints need under
    ``torch.load(weights_only=True)`` (torch >= 2.6).

    Args:
        init_default_scope (bool): make ``mmhand2p`` the default scope.
    """
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)
    if init_default_scope:
        set_default_scope('mmhand2p')


@contextlib.contextmanager
def keep_default_scope() -> Iterator[None]:
    """Restore the current default scope after the block.

    ``mmdet.apis.init_detector`` (and other ``init_*`` helpers) switch the
    global default scope to their own; wrap such calls so that mmhand2p
    components keep resolving afterwards::

        with keep_default_scope():
            detector = init_detector(cfg, ckpt)
    """
    before = DefaultScope.get_current_instance()
    try:
        yield
    finally:
        if before is not None:
            set_default_scope(before.scope_name)
