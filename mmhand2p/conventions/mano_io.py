# Copyright (c) mmhand2p contributors. All rights reserved.
"""Reading MANO model files without chumpy, and converting them.

The released ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (mano_v1_2) are Python 2
pickles (protocol 2) holding numpy arrays, a ``scipy.sparse.csc_matrix``
``J_regressor`` and ``chumpy.ch.Ch`` objects (``shapedirs``). chumpy does not
import on numpy >= 1.24, so :class:`_MANOUnpickler` maps chumpy's classes to a
stand-in that keeps the wrapped array (``Ch.__getstate__()['x']``) and
refuses every class that a MANO file does not contain, which also makes
loading an untrusted pickle safe.

Keys of a released MANO file (all kept by :func:`convert_mano_file`)::

    hands_components (45, 45)  f (1538, 3)        J_regressor (16, 778)
    kintree_table (2, 16)      J (16, 3)          bs_style 'lbs'
    hands_coeffs (1554, 45)    weights (778, 16)  posedirs (778, 3, 135)
    hands_mean (45,)           v_template (778, 3) shapedirs (778, 3, 10)
    bs_type 'lrotmin'
"""
import io
import os.path as osp
import pickle
from typing import Dict, Optional, Tuple

import numpy as np

from mmhand2p.utils.fileio import atomic_write_bytes

__all__ = [
    'ManoFileError', 'REQUIRED_KEYS', 'load_mano_file', 'convert_mano_file',
    'resolve_mano_path', 'fix_left_shapedirs', 'bundled_mano_dir'
]

#: keys the MANOLayer needs (the others are kept but optional)
REQUIRED_KEYS = ('v_template', 'f', 'J_regressor', 'kintree_table', 'weights',
                 'posedirs', 'shapedirs', 'hands_components', 'hands_mean')


class ManoFileError(ValueError):
    """A MANO model file is missing, unreadable or malformed."""


def bundled_mano_dir() -> str:
    """Folder of the hand model shipped with mmhand2p (``mmhand2p/assets``).

    It holds a procedurally generated model in MANO's exact format and
    topology, NOT the licensed MANO model; see ``mmhand2p/assets/README.md``.
    """
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'assets')


class _ChumpyStandIn:
    """Replaces ``chumpy.ch.Ch`` (and its subclasses) while unpickling."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {'x': state}


class _MANOUnpickler(pickle.Unpickler):
    """Unpickler that only admits the classes found in MANO model files."""

    _NUMPY = {
        ('numpy.core.multiarray', '_reconstruct'),
        ('numpy._core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'),
        ('numpy._core.multiarray', 'scalar'),
        ('numpy', 'ndarray'),
        ('numpy', 'dtype'),
    }

    def find_class(self, module, name):
        if module.startswith('chumpy'):
            return _ChumpyStandIn
        if (module, name) in self._NUMPY:
            if name in ('ndarray', 'dtype'):
                return getattr(np, name)
            # numpy 2 moved numpy.core to numpy._core (the old name warns)
            core = np._core if hasattr(np, '_core') else np.core
            return getattr(core.multiarray, name)
        if module.startswith('scipy.sparse') and name in (
                'csc_matrix', 'csr_matrix'):
            import scipy.sparse
            return getattr(scipy.sparse, name)
        if (module, name) in (('__builtin__', 'set'), ('builtins', 'set'),
                              ('_codecs', 'encode'), ('copy_reg',
                                                      '_reconstructor'),
                              ('copyreg', '_reconstructor'),
                              ('__builtin__', 'object'),
                              ('builtins', 'object')):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f'unexpected class {module}.{name} (a MANO model file holds only '
            'numpy arrays, scipy sparse matrices and chumpy arrays)')


def _to_array(value):
    """chumpy stand-ins and sparse matrices to dense numpy arrays."""
    if isinstance(value, _ChumpyStandIn):
        if 'x' not in value.state:
            raise ManoFileError('a chumpy object without its array (x)')
        return np.asarray(_to_array(value.state['x']))
    if hasattr(value, 'toarray') and hasattr(value, 'tocsc'):
        return np.asarray(value.toarray())
    return value


def resolve_mano_path(model_path: Optional[str], is_rhand: bool) -> str:
    """Find the model file for one hand.

    Args:
        model_path (str, optional): a file, or a folder that holds
            ``MANO_RIGHT.{npz,pkl}`` / ``MANO_LEFT.{npz,pkl}`` (npz preferred).
            ``None`` means the bundled hand model.
        is_rhand (bool): right (True) or left hand.

    Returns:
        str: path of an existing file.

    Raises:
        FileNotFoundError: naming the path(s) that were looked for.
    """
    if model_path is None:
        model_path = bundled_mano_dir()
    model_path = osp.expanduser(str(model_path))
    if osp.isfile(model_path):
        return model_path
    if osp.isdir(model_path):
        side = 'RIGHT' if is_rhand else 'LEFT'
        tried = [osp.join(model_path, f'MANO_{side}.{ext}')
                 for ext in ('npz', 'pkl')]
        for cand in tried:
            if osp.isfile(cand):
                return cand
        raise FileNotFoundError(
            f'No MANO {side.lower()}-hand model in folder {model_path!r}: '
            f'looked for {tried[0]!r} and {tried[1]!r}. Download the MANO '
            'model (mano_v1_2) and point `model_path` to its `models` folder, '
            'or leave it None for the bundled hand model.')
    raise FileNotFoundError(
        f'MANO model path {model_path!r} does not exist. Point `model_path` '
        'to MANO_RIGHT.pkl / MANO_LEFT.pkl (or their folder, or a .npz made '
        'by tools/misc/convert_mano.py), or leave it None for the bundled '
        'hand model.')


def load_mano_file(path: str) -> Dict[str, np.ndarray]:
    """Load and validate a MANO model file without chumpy.

    Args:
        path (str): ``.pkl`` (released format, chumpy inside) or ``.npz``.

    Returns:
        dict: key -> numpy array (``J_regressor`` dense, ``shapedirs`` a plain
        array); string fields (``bs_style``...) as ``str``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ManoFileError: naming the path and what is wrong (not a pickle / npz,
            not a MANO model, a missing key, a bad shape).
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'MANO model file {path!r} does not exist')
    try:
        if path.endswith('.npz'):
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
        else:
            with open(path, 'rb') as f:
                raw = _MANOUnpickler(f, encoding='latin1').load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, OSError) as e:
        raise ManoFileError(
            f'{path!r} is not a readable MANO model file '
            f'({type(e).__name__}: {e})') from e
    if not isinstance(raw, dict):
        raise ManoFileError(f'{path!r} is not a MANO model file: it holds a '
                            f'{type(raw).__name__}, not a dict of arrays')
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ManoFileError(
            f'MANO model file {path!r} lacks the key(s) {missing} (found: '
            f'{sorted(raw)})')
    data = {}
    for key, value in raw.items():
        value = _to_array(value)
        if isinstance(value, bytes):
            value = value.decode('latin1')
        if isinstance(value, np.ndarray) and value.dtype.kind in 'US':
            value = str(value)
        data[key] = value
    _check_shapes(data, path)
    return data


def _check_shapes(data: Dict, path: str) -> None:
    v = np.asarray(data['v_template'])
    if v.ndim != 2 or v.shape[1] != 3:
        raise ManoFileError(f'{path!r}: v_template has shape {v.shape}, '
                            'expected (V, 3)')
    n_v = v.shape[0]
    kin = np.asarray(data['kintree_table'])
    if kin.ndim != 2 or kin.shape[0] != 2:
        raise ManoFileError(f'{path!r}: kintree_table has shape {kin.shape}, '
                            'expected (2, J)')
    n_j = kin.shape[1]
    expected = {
        'f': (None, 3),
        'J_regressor': (n_j, n_v),
        'weights': (n_v, n_j),
        'shapedirs': (n_v, 3, None),
        'posedirs': (n_v, 3, 9 * (n_j - 1)),
        'hands_components': (None, 3 * (n_j - 1)),
        'hands_mean': (3 * (n_j - 1), ),
    }
    for key, shape in expected.items():
        arr = np.asarray(data[key])
        ok = arr.ndim == len(shape) and all(
            s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = tuple('*' if s is None else s for s in shape)
            raise ManoFileError(f'{path!r}: {key} has shape {arr.shape}, '
                                f'expected {want}')
    f = np.asarray(data['f'])
    if f.min() < 0 or f.max() >= n_v:
        raise ManoFileError(f'{path!r}: faces index vertices outside '
                            f'[0, {n_v})')


def fix_left_shapedirs(left: Dict[str, np.ndarray],
                       right: Dict[str, np.ndarray],
                       atol: float = 1e-8) -> Tuple[Dict, bool]:
    """Fix the released left model's shape space when it equals the right's.

    The left model is the mirror of the right one through ``x = 0``, so its
    ``shapedirs[:, 0, :]`` must be the negated right ones; the released
    MANO_LEFT.pkl has them equal to the right's instead (smplx issue 48), so
    a left hand grows the wrong way in x with its betas. The fix negates
    ``shapedirs[:, 0, :]`` exactly when the two are equal (up to ``atol``).

    Args:
        left (dict): the left model's arrays (not modified).
        right (dict): the right model's arrays.
        atol (float): tolerance of the equality test.

    Returns:
        tuple: the (possibly new) left dict and whether the fix was applied.
    """
    sl = np.asarray(left['shapedirs'])
    sr = np.asarray(right['shapedirs'])
    if sl.shape != sr.shape or not np.allclose(
            sl[:, 0, :], sr[:, 0, :], rtol=0, atol=atol):
        return left, False
    fixed = dict(left)
    sd = np.array(sl, copy=True)
    sd[:, 0, :] *= -1
    fixed['shapedirs'] = sd
    return fixed, True


def _atomic_savez(dst: str, arrays: Dict[str, np.ndarray]) -> None:
    """Write a compressed npz atomically (no half file remains)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(dst, buf.getvalue())


def convert_mano_file(src: str,
                      dst: str,
                      right_src: Optional[str] = None) -> Dict[str, object]:
    """Convert a released MANO pickle into a chumpy-free ``.npz``.

    The result loads with :class:`MANOLayer` and with
    ``smplx.MANO(model_path=dst, ext='npz')``: every key is kept, chumpy
    arrays become plain arrays, the sparse ``J_regressor`` becomes dense and
    strings become numpy strings (no pickled objects, ``allow_pickle`` is not
    needed).

    Args:
        src (str): the ``.pkl`` (or ``.npz``) to convert.
        dst (str): the ``.npz`` to write (written atomically).
        right_src (str, optional): for a LEFT model, the matching right model;
            when given, :func:`fix_left_shapedirs` is applied and recorded.

    Returns:
        dict: ``{'path': dst, 'num_vertices': V, 'left_shapedirs_fixed':
        bool}``.
    """
    data = load_mano_file(src)
    fixed = False
    if right_src is not None:
        data, fixed = fix_left_shapedirs(data, load_mano_file(right_src))
    arrays = {}
    for key, value in data.items():
        arrays[key] = np.asarray(value) if not isinstance(
            value, str) else np.str_(value)
    arrays['f'] = np.asarray(arrays['f']).astype(np.int64)
    _atomic_savez(dst, arrays)
    return dict(
        path=dst,
        num_vertices=int(arrays['v_template'].shape[0]),
        left_shapedirs_fixed=fixed)
