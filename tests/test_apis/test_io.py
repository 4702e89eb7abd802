# Copyright (c) mmhand2p contributors. All rights reserved.
"""Image loading (bad and unusual inputs), OBJ files, atomic and staged
writing, the result schema."""
import json
import os

import cv2
import numpy as np
import pytest

from mmhand2p.apis.io import (StagedOutputs, atomic_write_bytes, load_image,
                              load_result_schema, read_obj, to_bgr_uint8,
                              validate_result, vis_scale, write_obj)


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------
def test_missing_path_names_it(tmp_path):
    path = str(tmp_path / 'nope.jpg')
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        load_image(path)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ValueError, match='is a folder'):
        load_image(str(tmp_path))


def test_zero_byte_file(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty\.jpg.*empty \(0 bytes\)'):
        load_image(str(path))


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / 'notes.jpg'
    path.write_text('this is not a picture\n')
    with pytest.raises(ValueError, match=r'cannot decode .*notes\.jpg'):
        load_image(str(path))


def test_truncated_jpeg(tmp_path):
    img = np.full((64, 64, 3), 128, np.uint8)
    ok, buf = cv2.imencode('.jpg', img)
    path = tmp_path / 'cut.jpg'
    path.write_bytes(buf.tobytes()[:20])
    with pytest.raises(ValueError, match='cut.jpg'):
        load_image(str(path))


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = str(tmp_path / 'gray.png')
    cv2.imwrite(path, gray)
    img = load_image(path)
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)


def test_rgba_drops_alpha_keeps_colours(tmp_path):
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = 10, 20, 30
    bgra[..., 3] = 0  # fully transparent: colours still kept (not composited)
    path = str(tmp_path / 'rgba.png')
    cv2.imwrite(path, bgra)
    img = load_image(path)
    assert img.shape == (2, 3, 3)
    np.testing.assert_array_equal(img[0, 0], [10, 20, 30])
    # the same rule for arrays
    np.testing.assert_array_equal(load_image(bgra), bgra[..., :3])


def test_16bit_png_scaled_to_8bit(tmp_path):
    img16 = np.zeros((2, 3, 3), np.uint16)
    img16[0, 0] = [65535, 257 * 100, 0]
    img16[1, 2] = [257, 256, 514]
    path = str(tmp_path / 'deep.png')
    cv2.imwrite(path, img16)
    img = load_image(path)
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img[0, 0], [255, 100, 0])
    np.testing.assert_array_equal(img[1, 2], [1, 0, 2])
    # 16-bit grayscale too
    cv2.imwrite(path, img16[..., 0])
    np.testing.assert_array_equal(load_image(path)[0, 0], [255, 255, 255])


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # white stripe on the left of a landscape image
    exif = Image.Image().getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = str(tmp_path / 'phone.jpg')
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)
    img = load_image(path)
    assert img.shape == (20, 10, 3)  # upright: portrait
    # rotated clockwise, the left stripe ends up at the top
    assert img[:5].mean() > 200 and img[6:].mean() < 40


def test_array_conversions():
    f = np.full((2, 2, 3), 0.5, np.float32)
    assert load_image(f)[0, 0, 0] == 128  # 0-1 floats
    f255 = np.full((2, 2), 300.0)
    np.testing.assert_array_equal(load_image(f255)[0, 0], [255, 255, 255])
    assert load_image(np.ones((2, 2, 1), bool))[0, 0, 0] == 255
    with pytest.raises(ValueError, match='shape'):
        to_bgr_uint8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match='empty'):
        to_bgr_uint8(np.zeros((0, 2, 3), np.uint8))


def test_very_large_image(tmp_path):
    h, w = 6000, 8000
    big = np.zeros((h, w, 3), np.uint8)
    big[h // 2:, :, 2] = 200
    big[:, w // 2:, 1] = 100
    path = str(tmp_path / 'big.jpg')
    cv2.imwrite(path, big)
    del big
    img = load_image(path)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    assert img[h - 10, 10, 2] > 190 and img[10, w - 10, 1] > 90
    # drawing is downscaled: 8000 px -> 1920 px
    assert vis_scale(h, w, 1920) == pytest.approx(0.24)
    assert vis_scale(480, 640, 1920) == 1.0
    assert vis_scale(h, w, None) == 1.0


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------
def test_obj_round_trip(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.25]])
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    path = str(tmp_path / 'tet.obj')
    write_obj(path, v, f, comment='a tetrahedron\nsecond line')
    text = open(path).read()
    assert text.startswith('# a tetrahedron\n# second line\nv 0.000000')
    assert 'f 1 3 2\n' in text  # 1-based, order kept
    v2, f2 = read_obj(path)
    np.testing.assert_allclose(v2, v)
    np.testing.assert_array_equal(f2, f)
    with pytest.raises(ValueError, match='face indices'):
        write_obj(path, v, f + 1)
    with pytest.raises(ValueError, match='NaN'):
        write_obj(path, v * np.nan, f)
    # the failed writes left the first file as it was, and no temp files
    assert os.listdir(tmp_path) == ['tet.obj']


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    path = str(tmp_path / 'a.json')
    atomic_write_bytes(path, b'old')

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_bytes(path, b'new')
    monkeypatch.undo()
    assert open(path, 'rb').read() == b'old'
    assert os.listdir(tmp_path) == ['a.json']


def test_staged_outputs_commit_and_stale_files(tmp_path):
    out = str(tmp_path / 'out')
    os.makedirs(out)
    # an earlier run found three hands; this one finds one
    for name in ('img_hand0_right.obj', 'img_hand1_left.obj',
                 'img_hand2_left.obj', 'other_hand0_right.obj'):
        open(os.path.join(out, name), 'w').close()
    with StagedOutputs(out, [r'img_hand\d+_(right|left)\.obj', r'img\.json'
                             ]) as staged:
        atomic_write_bytes(staged.path('img_hand0_right.obj'), b'new')
        atomic_write_bytes(staged.path('img.json'), b'{}')
    assert sorted(os.listdir(out)) == [
        'img.json', 'img_hand0_right.obj', 'other_hand0_right.obj'
    ]
    assert open(os.path.join(out, 'img_hand0_right.obj'), 'rb').read() == \
        b'new'
    assert sorted(os.path.basename(p) for p in staged.written) == [
        'img.json', 'img_hand0_right.obj'
    ]
    with pytest.raises(ValueError, match='plain file names'):
        with StagedOutputs(out) as staged:
            staged.path('../escape.txt')


def test_staged_outputs_failure_leaves_nothing(tmp_path):
    out = str(tmp_path / 'out')
    with pytest.raises(RuntimeError, match='boom'):
        with StagedOutputs(out, [r'img.*']) as staged:
            atomic_write_bytes(staged.path('img_overlay.jpg'), b'x')
            atomic_write_bytes(staged.path('img.json'), b'{}')
            raise RuntimeError('boom')
    assert os.listdir(out) == []  # no outputs, no staging folder


def test_staged_outputs_failed_move_is_undone(tmp_path, monkeypatch):
    out = str(tmp_path / 'out')
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError('device gone')
        real_replace(src, dst)

    with pytest.raises(OSError, match='device gone'):
        with StagedOutputs(out) as staged:
            for name in ('a.json', 'b.obj', 'c.jpg'):
                with open(staged.path(name), 'wb') as f:
                    f.write(b'1')
            monkeypatch.setattr(os, 'replace', replace)
    monkeypatch.undo()
    assert os.listdir(out) == []


# ---------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------
def test_schema_is_valid_draft_2020_12():
    import jsonschema
    schema = load_result_schema()
    assert schema['$schema'].endswith('2020-12/schema')
    jsonschema.Draft202012Validator.check_schema(schema)


def _minimal_result(hands=(), pairs=()):
    return dict(
        schema_version='1.0',
        image=dict(
            path=None, name='image_000000', frame=None, width=4, height=3),
        camera=dict(
            intrinsics=[[4.0, 0, 1.5], [0, 4.0, 1.0], [0, 0, 1]],
            assumed=True),
        hands=list(hands),
        pairs=list(pairs),
        timing_ms=dict(
            detector=1.0,
            reconstruction=2.0,
            refinement=None,
            rendering=None,
            total=3.5))


def test_schema_accepts_and_rejects():
    import jsonschema
    validate_result(_minimal_result())
    hand = dict(
        id=0,
        handedness='left',
        bbox=[0, 0, 2, 2],
        score=0.5,
        pair_id=0,
        mano=dict(
            pose=[[0.0, 0, 0]] * 16, betas=[0.0] * 10, transl=[0.0, 0, 0.5]),
        joints_3d=[[0.0, 0, 0.5]] * 21,
        joints_2d=[[1.0, 1.0]] * 21,
        refined=False,
        mesh_file=None)
    pair = dict(right=None, left=0, score=0.5, rel_transl=None)
    validate_result(_minimal_result([hand], [pair]))
    # a round trip through JSON text keeps it valid
    validate_result(json.loads(json.dumps(_minimal_result([hand], [pair]))))
    for bad in (dict(hand, handedness='both'), dict(hand, joints_3d=[[0]]),
                dict(hand, extra=1)):
        with pytest.raises(jsonschema.ValidationError):
            validate_result(_minimal_result([bad], [pair]))
    with pytest.raises(jsonschema.ValidationError):
        validate_result(_minimal_result(pairs=[dict(pair, rel_transl=[1])]))
