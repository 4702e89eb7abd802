# Copyright (c) mmhand2p contributors. All rights reserved.
"""Reading input images and writing the inferencer's outputs safely.

Reading (:func:`load_image`) turns whatever a user points the demo at into
one ``(H, W, 3)`` uint8 BGR array, or fails with an error that names the
file:

- a missing path: ``FileNotFoundError``; a folder, an empty (0-byte) file or
  a file OpenCV cannot decode (a text file named ``.jpg``, a truncated
  download): ``ValueError``;
- grayscale -> 3 equal channels; an alpha channel is **dropped** (the colour
  channels are kept as they are, not composited onto a background);
- 16-bit -> 8-bit by ``value // 257`` (0-65535 -> 0-255); float images are
  taken as 0-1 (when their maximum is <= 1) or 0-255 and clipped;
- EXIF orientation is applied (OpenCV does so for every flag but
  ``IMREAD_UNCHANGED``, and we read with ``IMREAD_ANYDEPTH |
  IMREAD_ANYCOLOR``), so a phone photo comes out upright, and all pixel
  coordinates in the outputs refer to the upright image;
- any size OpenCV decodes (its limit is 2^30 pixels): the full-resolution
  array is kept (the model crops the hands from it), and only the rendered
  pictures are downscaled (:func:`vis_scale`).

Writing: every output file is written to a temporary name and moved into
place with ``os.replace`` (atomic on POSIX and Windows within a file
system); :class:`StagedOutputs` stages all files of one image in a temporary
folder and moves them only once every file was written, so a failure leaves
none of them behind, and a failure while moving them puts the files of an
earlier run back exactly as they were. Text is written as UTF-8 (file names
with any characters end up in OBJ headers and JSON).
"""
import json
import os
import os.path as osp
import re
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

from mmhand2p.utils.fileio import atomic_write_bytes
from mmhand2p.visualization.image_panels import vis_scale

__all__ = [
    'IMAGE_EXTENSIONS', 'VIDEO_EXTENSIONS', 'load_image', 'to_bgr_uint8',
    'vis_scale', 'atomic_write_bytes', 'write_obj', 'read_obj', 'imencode',
    'StagedOutputs', 'OutputsNotRestoredError', 'remove_stale_staging',
    'check_out_dir', 'RESULT_SCHEMA_PATH', 'RESULT_SCHEMA_VERSION',
    'load_result_schema', 'validate_result'
]

#: file extensions taken as images when a folder is given (lower case)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp',
                    '.jp2', '.pgm', '.ppm', '.pbm', '.pnm', '.exr')
#: file extensions read frame by frame with ``cv2.VideoCapture``
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg',
                    '.mpeg', '.wmv')

RESULT_SCHEMA_PATH = osp.join(osp.dirname(__file__), 'result_schema.json')
RESULT_SCHEMA_VERSION = '1.0'


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def to_bgr_uint8(image: np.ndarray, name: str = 'the image') -> np.ndarray:
    """Any decoded image array as ``(H, W, 3)`` uint8 (channel order kept).

    Args:
        image (np.ndarray): ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or
            ``(H, W, 4)`` (the 4th channel, alpha, is dropped); uint8,
            uint16 (divided by 257), other integers (clipped to 0-255) or
            floats (0-1 when the maximum is <= 1, else 0-255; clipped).
        name (str): how errors refer to the image.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8, C-contiguous.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3
                                  and arr.shape[2] not in (3, 4)):
        raise ValueError(f'{name}: expected an (H, W), (H, W, 3) or (H, W, 4)'
                         f' image array, got shape {arr.shape}')
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f'{name}: the image is empty (shape {arr.shape})')
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]  # alpha dropped, colours kept as they are
    if arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr.astype(np.float32), nan=0.0)
        if finite.size and float(finite.max()) <= 1.0:
            finite = finite * 255.0
        arr = np.clip(np.round(finite), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f'{name}: unsupported pixel type {arr.dtype}')
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(arr)


def load_image(image: Union[str, os.PathLike, np.ndarray]) -> np.ndarray:
    """Read an image file (or normalise an array) to ``(H, W, 3)`` uint8 BGR.

    See the module docstring for what is accepted and how bad inputs fail.
    Arrays are taken as OpenCV's BGR (as ``cv2.imread`` returns them), with
    the conversions of :func:`to_bgr_uint8`.

    Args:
        image (str | PathLike | np.ndarray): a file path or an array.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 BGR, upright (EXIF applied).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is a folder, an empty file or not a decodable
            image.
    """
    if isinstance(image, np.ndarray):
        return to_bgr_uint8(image, 'the image array')
    path = os.fspath(image)
    if not osp.exists(path):
        raise FileNotFoundError(f'image file not found: {path!r}')
    if osp.isdir(path):
        raise ValueError(f'{path!r} is a folder, not an image file')
    size = osp.getsize(path)
    if size == 0:
        raise ValueError(f'image file {path!r} is empty (0 bytes)')
    # np.fromfile + imdecode: works for non-ASCII paths on every platform
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ValueError(f'cannot read image file {path!r}: {e}') from e
    arr = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if arr is None:
        raise ValueError(
            f'cannot decode {path!r} ({size} bytes) as an image: it is not an'
            ' image file, is truncated, or its format is not supported by '
            'OpenCV')
    return to_bgr_uint8(arr, repr(path))


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def imencode(image: np.ndarray, ext: str = '.jpg', quality: int = 92) -> bytes:
    """Encode a BGR image with OpenCV (``ext`` picks the format)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)
              ] if ext.lower() in ('.jpg', '.jpeg') else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f'OpenCV could not encode a {image.shape} image as '
                         f'{ext}')
    return buf.tobytes()


def write_obj(path: str,
              vertices: np.ndarray,
              faces: np.ndarray,
              comment: Optional[str] = None) -> None:
    """Write a triangle mesh as a Wavefront OBJ file (atomically).

    Args:
        path (str): output file.
        vertices (np.ndarray): ``(V, 3)``, written with 6 decimals (metres:
            micrometre precision).
        faces (np.ndarray): ``(F, 3)`` 0-based vertex indices, counter-
            clockwise seen from outside (written 1-based, order kept).
        comment (str, optional): a header comment (one line per ``\\n``).
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f'vertices must be (V, 3), got {v.shape}')
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f'faces must be (F, 3), got {f.shape}')
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f'face indices must be in [0, {len(v)}), got '
                         f'[{f.min()}, {f.max()}]')
    if not np.isfinite(v).all():
        raise ValueError('vertices hold NaN or inf')
    lines: List[str] = []
    if comment:
        lines += [f'# {c}' for c in comment.splitlines()]
    lines += [f'v {x:.6f} {y:.6f} {z:.6f}' for x, y, z in v.tolist()]
    lines += [f'f {a} {b} {c}' for a, b, c in (f + 1).tolist()]
    atomic_write_bytes(path, ('\n'.join(lines) + '\n').encode('utf-8'))


def read_obj(path: str):
    """Vertices ``(V, 3)`` and 0-based triangle faces ``(F, 3)`` of an OBJ
    file (``v`` and ``f`` records only; ``f a/b/c`` forms accepted)."""
    verts, faces = [], []
    with open(path, encoding='utf-8') as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == 'v':
                verts.append([float(p) for p in parts[1:4]])
            elif parts[0] == 'f':
                if len(parts) != 4:
                    raise ValueError(f'{path}: only triangles are supported')
                faces.append([int(p.split('/')[0]) - 1 for p in parts[1:]])
    return (np.asarray(verts, np.float64).reshape(-1, 3),
            np.asarray(faces, np.int64).reshape(-1, 3))


def check_out_dir(out_dir: str) -> str:
    """Check, before any work, that outputs can be written to ``out_dir``.

    The folder may not exist yet (it is created when the first file is
    written; nothing is created here): then its nearest existing parent is
    checked. A probe file is created there and removed again.

    Args:
        out_dir (str): the output folder.

    Returns:
        str: its absolute path.

    Raises:
        ValueError: ``out_dir`` (or a parent of it) is a file, or the
            folder cannot be written to (the message has the OS's reason).
    """
    path = osp.abspath(os.fspath(out_dir))
    probe_dir = path
    while not osp.exists(probe_dir):
        parent = osp.dirname(probe_dir)
        if parent == probe_dir:
            break
        probe_dir = parent
    if not osp.isdir(probe_dir):
        where = 'is a file' if probe_dir == path else \
            f'cannot be created: {probe_dir!r} is a file, not a folder'
        raise ValueError(f'output folder {path!r} {where}; give a folder '
                         '(existing or to be created) to write into')
    try:
        fd, probe = tempfile.mkstemp(prefix='.write_probe_', dir=probe_dir)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ValueError(
            f'output folder {path!r}: cannot write into {probe_dir!r} '
            f'({e.strerror or e}); give a folder you can write to') from e
    return path


#: staging folders of other processes older than this (seconds) are taken
#: as left by a killed run and removed (one image's files are staged for
#: well under a second; see :func:`remove_stale_staging`)
STALE_STAGING_AGE_S = 600.0
_STAGING_PREFIX = '.staging_'


def _host_tag() -> str:
    """8 hex digits of this machine's name (staging folders of another
    machine sharing the folder are judged by age only)."""
    import hashlib
    import socket
    return hashlib.sha1(socket.gethostname().encode('utf-8',
                                                    'replace')).hexdigest()[:8]


def _pid_alive(pid: int) -> Optional[bool]:
    """Whether process ``pid`` runs on this machine; None: cannot tell."""
    if os.name == 'nt':  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return None
    return True


def remove_stale_staging(out_dir: str,
                         max_age_s: float = STALE_STAGING_AGE_S) -> List[str]:
    """Remove the ``.staging_*`` folders that killed runs left in
    ``out_dir``; returns their paths.

    A staging folder is named ``.staging_<pid>@<host>_<random>``. It is
    removed when its process is gone (same machine, PID not running) or
    when it is older than ``max_age_s`` (its last change; also for folders
    of other machines and of older versions without a PID). A concurrent
    run writing into the same folder keeps its staging folder.
    """
    removed: List[str] = []
    if not osp.isdir(out_dir):
        return removed
    host, now = _host_tag(), time.time()
    for name in os.listdir(out_dir):
        if not name.startswith(_STAGING_PREFIX):
            continue
        path = osp.join(out_dir, name)
        if osp.islink(path) or not osp.isdir(path):
            continue
        match = re.match(r'\.staging_(\d+)@([0-9a-f]{8})_', name)
        alive = None
        if match and match.group(2) == host:
            alive = _pid_alive(int(match.group(1)))
        try:
            age = now - osp.getmtime(path)
        except OSError:
            continue
        if alive is False or (age > max_age_s and
                              (alive is None
                               or int(match.group(1)) != os.getpid())):
            shutil.rmtree(path, ignore_errors=True)
            if not osp.exists(path):
                removed.append(path)
    return removed


class OutputsNotRestoredError(OSError):
    """A failed commit could not put every earlier output back; the
    message says which files and where their backups are kept."""


class StagedOutputs:
    """All output files of one image, committed together or not at all.

    Files are written into a staging folder inside ``out_dir``
    (``.staging_<pid>@<host>_<random>/new``). On a clean exit of the
    ``with`` block they are moved into ``out_dir`` one by one with
    ``os.replace`` (each move is atomic), and files of an earlier run
    matching ``stale_patterns`` that this run did not write are removed (a
    re-run that finds fewer hands leaves no old meshes).

    The commit is all or nothing: an earlier file about to be replaced is
    first hard-linked (or, where links are not supported, copied) into the
    staging folder's ``old`` folder, a stale one is moved there; if any move
    fails, every replaced or removed earlier file is put back from its
    backup and the files that did not exist before are removed, so
    ``out_dir`` is exactly as it was. The backups are dropped only once
    every move succeeded. If even putting back fails,
    :class:`OutputsNotRestoredError` names the files and keeps the staging
    folder with the backups. When the block raises, the staging folder is
    deleted and ``out_dir`` is not touched.

    Staging folders of killed runs are removed on entry
    (:func:`remove_stale_staging`).

    Example::

        with StagedOutputs(out_dir) as out:
            write_obj(out.path('img_hand0_right.obj'), v, f)
            atomic_write_bytes(out.path('img.json'), data)

    Args:
        out_dir (str): the final folder (created if needed).
        stale_patterns (sequence of str): regular expressions of file names
            in ``out_dir`` that belong to this image (``re.fullmatch``).
    """

    def __init__(self, out_dir: str,
                 stale_patterns: Sequence[str] = ()) -> None:
        self.out_dir = osp.abspath(out_dir)
        self.stale_patterns = [re.compile(p) for p in stale_patterns]
        self._tmp: Optional[str] = None
        self.written: List[str] = []

    def __enter__(self) -> 'StagedOutputs':
        os.makedirs(self.out_dir, exist_ok=True)
        remove_stale_staging(self.out_dir)
        self._tmp = tempfile.mkdtemp(
            prefix=f'{_STAGING_PREFIX}{os.getpid()}@{_host_tag()}_',
            dir=self.out_dir)
        os.mkdir(osp.join(self._tmp, 'new'))
        os.mkdir(osp.join(self._tmp, 'old'))
        return self

    def path(self, name: str) -> str:
        """Where to write the output file ``name`` (a plain file name)."""
        if self._tmp is None:
            raise RuntimeError('StagedOutputs.path() outside the with block')
        if osp.basename(name) != name or name in ('', '.', '..') or \
                name.startswith(_STAGING_PREFIX):
            raise ValueError(f'output names must be plain file names (not '
                             f'{_STAGING_PREFIX}*), got {name!r}')
        return osp.join(self._tmp, 'new', name)

    @staticmethod
    def _backup(src: str, bak: str) -> None:
        """``bak`` = the file ``src`` (a hard link, or a copy)."""
        try:
            os.link(src, bak)
        except OSError:
            shutil.copy2(src, bak)

    def _commit(self) -> bool:
        """Move the staged files in; returns True. On failure: restore and
        raise (the staging folder is to be kept when restoring failed)."""
        new, old = osp.join(self._tmp, 'new'), osp.join(self._tmp, 'old')
        names = sorted(os.listdir(new))
        keep = set(names)
        stale = sorted(
            n for n in os.listdir(self.out_dir) if n not in keep and any(
                p.fullmatch(n) for p in self.stale_patterns)
            and osp.isfile(osp.join(self.out_dir, n)))
        backed_up: List[str] = []  # names whose earlier file is in old/
        moved: List[str] = []  # names now in out_dir (new or removed)
        try:
            for name in names:
                dst = osp.join(self.out_dir, name)
                if osp.lexists(dst):
                    if osp.isdir(dst) and not osp.islink(dst):
                        raise IsADirectoryError(
                            f'cannot write {dst!r}: a folder of that name '
                            'is in the way (rename or remove it)')
                    self._backup(dst, osp.join(old, name))
                    backed_up.append(name)
                os.replace(osp.join(new, name), dst)
                moved.append(name)
            for name in stale:
                os.replace(osp.join(self.out_dir, name), osp.join(old, name))
                backed_up.append(name)
                moved.append(name)
        except BaseException as err:
            failed = self._restore(moved, backed_up)
            if failed:
                raise OutputsNotRestoredError(
                    f'writing the outputs into {self.out_dir!r} failed '
                    f'({type(err).__name__}: {err}) and {len(failed)} '
                    f'earlier file(s) could not be put back: {failed}; '
                    f'their backups are in {old!r}') from err
            raise
        self.written = [osp.join(self.out_dir, n) for n in names]
        return True

    def _restore(self, moved: List[str], backed_up: List[str]) -> List[str]:
        """Undo a partial commit; returns the names that could not be put
        back."""
        old = osp.join(self._tmp, 'old')
        failed = []
        for name in reversed(moved):
            dst = osp.join(self.out_dir, name)
            try:
                if name in backed_up:
                    os.replace(osp.join(old, name), dst)
                elif osp.lexists(dst):
                    os.remove(dst)
            except OSError:
                failed.append(name)
        # a backup taken just before its move failed: the earlier file was
        # not touched (a hard link or a copy), nothing to restore
        return failed

    def __exit__(self, exc_type, exc, tb) -> bool:
        keep_staging = False
        try:
            if exc_type is None:
                try:
                    self._commit()
                except OutputsNotRestoredError:
                    keep_staging = True
                    raise
        finally:
            if not keep_staging:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return False


# ---------------------------------------------------------------------------
# the result schema
# ---------------------------------------------------------------------------
def load_result_schema() -> Dict:
    """The JSON Schema (draft 2020-12) of the inferencer's per-image result
    (``mmhand2p/apis/result_schema.json``)."""
    with open(RESULT_SCHEMA_PATH, encoding='utf-8') as f:
        return json.load(f)


def validate_result(result: Dict) -> None:
    """Check a result dict against :func:`load_result_schema`.

    Raises:
        ImportError: ``jsonschema`` is not installed (``pip install
            jsonschema``).
        jsonschema.ValidationError: the result does not follow the schema.
    """
    try:
        import jsonschema
    except ImportError as e:
        raise ImportError('validating results needs the jsonschema package:'
                          ' pip install jsonschema') from e
    schema = load_result_schema()
    jsonschema.Draft202012Validator(schema).validate(result)
