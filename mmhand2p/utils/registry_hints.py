# Copyright (c) mmhand2p contributors. All rights reserved.
"""Close-match suggestions for unknown component names in configs.

mmengine answers an unknown ``type`` with a bare ``KeyError`` ("X is not in
the mmhand2p::model registry"). :func:`with_close_matches` wraps a registry
build function so that the error also lists the closest registered names;
:func:`add_close_match_hints` puts it on a registry (mmhand2p's children
and mmengine's roots, through which the Runner builds the top-level model,
datasets, hooks, optimizers...), and :func:`with_optimizer_check` makes an
optimizer wrapper constructor refuse an unknown optimizer ``type`` the same
way (mmengine's ``DefaultOptimWrapperConstructor`` gets ``None`` for it and
fails with "None is not a callable object").
"""
import difflib
import functools
import re
from typing import Callable, List, Optional

__all__ = [
    'with_close_matches', 'known_names', 'close_matches',
    'add_close_match_hints', 'with_optimizer_check'
]

_HINT = 'Close matches:'
# mmengine's messages: "X is not in the mmhand2p::model registry" (most
# builders) and "X is not in the parameter scheduler registry" (schedulers
# converted to iterations, runners)
_NOT_IN = re.compile(r'(?P<name>[\w.]+) is not in the '
                     r'(?:(?P<scope>[\w.-]+)::)?(?P<registry>[\w ]+?) '
                     r'registry')


def known_names(registry) -> List[str]:
    """Names a config may use from ``registry``'s scope: its own, its
    ancestors', and other scopes' as ``scope.Name``."""
    names = set()
    reg = registry
    while reg is not None:
        names.update(reg._module_dict)
        reg = reg.parent
    root = registry._get_root_registry()
    stack = list(root.children.values())
    while stack:
        child = stack.pop()
        if child.scope != registry.scope:
            names.update(f'{child.scope}.{n}' for n in child._module_dict)
        stack.extend(child.children.values())
    return sorted(names)


def close_matches(name: str, registry, n: int = 5) -> List[str]:
    """Up to ``n`` registered names closest to ``name`` (whole, then its
    part after the last ``scope.``) among :func:`known_names`."""
    names = known_names(registry)
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    short = name.split('.')[-1]
    close += [
        m for m in difflib.get_close_matches(short, names, n=n, cutoff=0.6)
        if m not in close
    ]
    return close[:n]


def _hint(name: str, registry) -> str:
    close = close_matches(name, registry)
    return f' {_HINT} {", ".join(close)}.' if close else f' {_HINT} none.'


def _registry_of_scope(registry, scope: Optional[str]):
    """The registry of ``scope`` in ``registry``'s tree (the one mmengine
    searched after switching to that scope), else ``registry``."""
    if not scope:
        from mmengine.registry import DefaultScope
        current = DefaultScope.get_current_instance()
        scope = current.scope_name if current is not None else None
    if not scope or scope == registry.scope:
        return registry
    root = registry._get_root_registry()
    if root.scope == scope:
        return root
    found = root._search_child(scope)
    return found if found is not None else registry


def with_close_matches(build_func: Callable) -> Callable:
    """Wrap a registry build function so that an unknown ``type`` raises a
    ``KeyError`` that also lists the closest registered names.

    The hint is added once, by the innermost wrapped build that sees the
    error, and names the registry mmengine searched (the scope in its
    message, else the current default scope). The exception keeps its
    traceback. Wrapping twice returns the wrapped function itself.
    """
    if getattr(build_func, '_close_match_hints', False):
        return build_func

    @functools.wraps(build_func)
    def build(cfg, *args, **kwargs):
        try:
            return build_func(cfg, *args, **kwargs)
        except KeyError as e:
            msg = e.args[0] if len(e.args) == 1 else None
            registry = kwargs.get('registry', args[0] if args else None)
            found = _NOT_IN.search(msg) if isinstance(msg, str) else None
            if found is None or _HINT in msg or registry is None:
                raise
            scope = found.group('scope')
            if scope is None and hasattr(cfg, 'get'):
                scope = cfg.get('_scope_')
            searched = _registry_of_scope(registry, scope)
            e.args = (msg + _hint(found.group('name'), searched), )
            raise

    build._close_match_hints = True
    return build


def with_optimizer_check(build_func: Callable, optimizers) -> Callable:
    """Wrap the build function of optimizer wrapper constructors: a string
    ``optim_wrapper_cfg.optimizer.type`` that ``optimizers`` does not know
    raises mmengine's ``KeyError`` with close matches, instead of the
    constructor's "None is not a callable object" later."""
    if getattr(build_func, '_optimizer_check', False):
        return build_func

    @functools.wraps(build_func)
    def build(cfg, *args, **kwargs):
        wrapper_cfg = cfg.get('optim_wrapper_cfg') if hasattr(cfg,
                                                              'get') else None
        optim_cfg = wrapper_cfg.get('optimizer') if hasattr(
            wrapper_cfg, 'get') else None
        name = optim_cfg.get('type') if hasattr(optim_cfg, 'get') else None
        if isinstance(name, str):
            with optimizers.switch_scope_and_registry(
                    optim_cfg.get('_scope_')) as registry:
                if registry.get(name) is None:
                    raise KeyError(
                        f'{name} is not in the {registry.scope}::'
                        f'{registry.name} registry (optim_wrapper.optimizer.'
                        f'type).{_hint(name, registry)}')
        return build_func(cfg, *args, **kwargs)

    build._optimizer_check = True
    build._close_match_hints = getattr(build_func, '_close_match_hints', False)
    return build


def add_close_match_hints(registry) -> None:
    """Make ``registry``'s builds add close matches to unknown-type errors
    (idempotent). Used on mmhand2p's registries and on mmengine's roots,
    which the Runner builds top-level components through."""
    registry.build_func = with_close_matches(registry.build_func)
