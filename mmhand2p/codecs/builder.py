# Copyright (c) mmhand2p contributors. All rights reserved.
"""Building a codec from a config, and the deprecated keyword arguments
that set codec conventions on a transform or a head directly."""
import warnings
from typing import Any, Dict, Optional, Union

from mmhand2p.registry import CODECS
from mmhand2p.utils.typing import ConfigType

__all__ = ['build_codec', 'resolve_codec']


def build_codec(cfg: Union[ConfigType, Any]):
    """A codec from its config (``dict(type='TwoHandCodec', ...)``); a built
    codec is returned as it is."""
    if isinstance(cfg, dict):
        return CODECS.build(cfg)
    if hasattr(cfg, 'encode') and hasattr(cfg, 'conventions'):
        return cfg
    raise TypeError('a codec must be a config dict such as '
                    "dict(type='TwoHandCodec', left_as_right=True) or a "
                    f'built codec, got {type(cfg).__name__}')


def resolve_codec(codec: Optional[Union[ConfigType, Any]],
                  legacy: Dict[str, Any],
                  defaults: Dict[str, Any],
                  owner: str,
                  arg: str = 'decoder'):
    """The codec of a component that used to take its conventions as
    keyword arguments (``left_as_right``, ``depth_range``...).

    * ``codec`` given: it is used; a legacy keyword that is also given
      (not None) must agree with it (a ``DeprecationWarning`` says to drop
      it), else ``ValueError`` naming the keyword and both values.
    * no ``codec``: a ``TwoHandCodec`` from ``defaults`` updated with the
      given legacy keywords (a ``DeprecationWarning`` if any was given).

    Args:
        codec (dict | codec, optional): the config variable shared with the
            other side (pipeline or head).
        legacy (dict): keyword -> value (None = not given).
        defaults (dict): the component's former defaults of those keywords.
        owner (str): the component's name, for the messages.
        arg (str): the component's codec argument (``'encoder'`` for the
            target generator, ``'decoder'`` for heads).
    """
    given = {k: v for k, v in legacy.items() if v is not None}
    hint = ("pass one codec = dict(type='TwoHandCodec', ...) to both "
            'GenerateTwoHandTargets(encoder=codec) and the head '
            '(decoder=codec) instead')
    if codec is None:
        if given:
            warnings.warn(
                f'{owner}({_kw(given)}) is deprecated: {hint}',
                DeprecationWarning,
                stacklevel=3)
        return CODECS.build(dict(defaults, **given, type='TwoHandCodec'))
    codec = build_codec(codec)
    for key, value in given.items():
        have = getattr(codec, key, None)
        if have != value:
            raise ValueError(
                f'{owner}: {key}={value!r} contradicts {arg}={codec!r} '
                f'({key}={have!r}); drop {key} (the codec sets it for the '
                'pipeline and the head alike)')
    if given:
        warnings.warn(
            f'{owner}({_kw(given)}) repeats its {arg}: these keywords are '
            f'deprecated, drop them ({hint})',
            DeprecationWarning,
            stacklevel=3)
    return codec


def _kw(values: Dict[str, Any]) -> str:
    return ', '.join(f'{k}={v!r}' for k, v in values.items())
