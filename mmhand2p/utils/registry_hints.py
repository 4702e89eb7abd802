# Copyright (c) mmhand2p contributors. All rights reserved.
"""Close-match suggestions for unknown component names in configs."""
import difflib
import functools
from typing import Callable, List

__all__ = ['with_close_matches', 'known_names']

_HINT = 'Close matches:'


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


def with_close_matches(build_func: Callable) -> Callable:
    """Wrap a registry build function so that an unknown ``type`` raises a
    ``KeyError`` that also lists the closest registered names."""

    @functools.wraps(build_func)
    def build(cfg, registry, *args, **kwargs):
        try:
            return build_func(cfg, registry, *args, **kwargs)
        except KeyError as e:
            obj_type = cfg.get('type') if hasattr(cfg, 'get') else None
            msg = e.args[0] if e.args else ''
            if (not isinstance(obj_type, str) or not isinstance(msg, str)
                    or _HINT in msg or 'is not in the' not in msg
                    or obj_type not in msg):
                raise
            names = known_names(registry)
            short = obj_type.split('.')[-1]
            close = difflib.get_close_matches(obj_type, names, n=5,
                                              cutoff=0.6)
            close += [
                n for n in difflib.get_close_matches(
                    short, names, n=5, cutoff=0.6) if n not in close
            ]
            hint = (f' {_HINT} {", ".join(close[:5])}.'
                    if close else f' {_HINT} none.')
            raise KeyError(msg + hint) from None

    return build
