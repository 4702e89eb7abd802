# Copyright (c) mmhand2p contributors. All rights reserved.
"""TwoHandLocalVisualizer: overlays land where the hands project."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmhand2p.datasets.transforms import (PackTwoHandInputs, RandomTwoHandFlip,
                                          TwoHandCropAffine)
from mmhand2p.models import MANOLayer
from mmhand2p.structures import HandDataSample
from mmhand2p.visualization import (TwoHandLocalVisualizer, drawing_camera,
                                    project_to_image, render_meshes,
                                    side_view_camera)

BG = 50  # gray background: no shaded skin / blue pixel equals it


@pytest.fixture(scope='module')
def mano():
    return MANOLayer()


@pytest.fixture(scope='module')
def scene(mano):
    """Both hands, palms to the camera, side by side at 0.6 m (camera
    frame of the original camera); (vertices (2, 778, 3), joints (2, 21, 3))
    float64."""
    pose = torch.zeros(1, 2, 16, 3)
    pose[0, :, 0] = torch.tensor([np.pi / 2, 0.0, 0.0])
    transl = torch.tensor([[[-0.13, 0.02, 0.6], [0.13, 0.02, 0.6]]])
    out = mano(pose, transl=transl)
    return (out.vertices[0].double().numpy(), out.joints[0].double().numpy())


@pytest.fixture(scope='module')
def vis():
    return TwoHandLocalVisualizer(name='test_local_visualizer')


def _mask(verts, faces, k, hw):
    out = render_meshes([verts[0], verts[1]], [faces[0], faces[1]],
                        k,
                        image_size=hw)
    return out.mesh_id


def _changed(drawn, image):
    return np.any(drawn != image, axis=-1)


def test_overlay_exactly_on_the_projected_hands(scene, mano, vis, tmp_path):
    verts, joints = scene
    h, w = 120, 160
    k = np.array([[180.0, 0, 79.5], [0, 180.0, 59.5], [0, 0, 1]])
    image = np.full((h, w, 3), BG, np.uint8)
    sample = HandDataSample(metainfo=dict(cam_intrinsics=k, input_size=(w, h)))
    sample.pred_hands = InstanceData(
        vertices=torch.from_numpy(verts).float(),
        joints_3d=torch.from_numpy(joints).float())
    faces = mano.faces.numpy()

    # the mesh overlay alone changes exactly the pixels the hands cover
    drawn = vis.draw_sample(image, sample, draw_skeleton=False)
    assert drawn.shape == (h, 2 * w, 3) and drawn.dtype == np.uint8
    overlay, side = drawn[:, :w], drawn[:, w:]
    mesh_id = _mask(verts, faces, k, (h, w))
    assert (mesh_id >= 0).sum() > 500
    np.testing.assert_array_equal(_changed(overlay, image), mesh_id >= 0)
    # right hand skin-coloured (red > blue), left hand blue
    right, left = overlay[mesh_id == 0], overlay[mesh_id == 1]
    assert (right[:, 0] > right[:, 2]).all()
    assert (left[:, 2] > left[:, 0]).all()
    # the middle MCP of each hand projects onto its own mesh
    uv, front = project_to_image(joints[:, 9], k)
    assert front.all()
    for hand in range(2):
        c, r = np.round(uv[hand]).astype(int)
        assert mesh_id[r, c] == hand

    # with skeletons: the projected wrists are coloured, a far corner is not
    drawn = vis.draw_sample(image, sample)
    overlay = drawn[:, :w]
    uv, _ = project_to_image(joints[:, 0], k)
    for hand in range(2):
        c, r = np.round(uv[hand]).astype(int)
        assert tuple(overlay[r, c]) != (BG, BG, BG)
    np.testing.assert_array_equal(overlay[:5, :5], image[:5, :5])
    np.testing.assert_array_equal(overlay[-5:, -5:], image[-5:, -5:])

    # side view: the meshes seen from the side fill part of the panel
    non_bg = np.any(side != 255, axis=-1)
    non_bg[:25] = False  # the caption
    assert non_bg.sum() > 200

    # add_datasample writes exactly the drawn picture
    out_file = tmp_path / 'sub' / 'drawn.png'
    returned = vis.add_datasample(
        'sample', image, sample, out_file=str(out_file))
    np.testing.assert_array_equal(returned, drawn)
    saved = cv2.imread(str(out_file))
    np.testing.assert_array_equal(saved[..., ::-1], drawn)


def test_side_view_camera_frames_the_points():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 3)) * [0.1, 0.05, 0.02] + [0.1, 0.0, 0.7]
    transform, k = side_view_camera(pts, (100, 200), 90.0, fill=0.45)
    moved = pts @ transform[:3, :3].T + transform[:3, 3]
    # a rigid motion: distances are kept
    np.testing.assert_allclose(
        np.linalg.norm(moved[1:] - moved[:1], axis=1),
        np.linalg.norm(pts[1:] - pts[:1], axis=1),
        rtol=1e-9)
    # turned 90 degrees about y: the old depth axis is the new x axis
    np.testing.assert_allclose(
        transform[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    uv, front = project_to_image(moved, k)
    assert front.all()
    off = np.abs(uv - [99.5, 49.5])
    # the farthest projected point is exactly at fill * min(H, W)
    assert off.max() == pytest.approx(0.45 * 100, rel=1e-9)


@pytest.mark.parametrize('flip', [False, True])
def test_original_image_undoes_the_crop_rotation_and_flip(
        scene, mano, vis, flip):
    """Pack a sample with the real pipeline (flip, rotated crop), then draw
    its (GT as predicted) meshes back on the original image."""
    verts, joints = scene
    h, w = 150, 200
    k = np.array([[230.0, 0, 93.0], [0, 230.0, 80.0], [0, 0, 1]])
    img = np.full((h, w, 3), BG, np.uint8)
    j2d, _ = project_to_image(joints, k)
    lo, hi = j2d.min(1), j2d.max(1)
    results = dict(
        img=img.copy(),
        img_shape=(h, w),
        ori_shape=(h, w),
        img_path='scene.png',
        cam_intrinsics=k.astype(np.float32),
        joints_3d=joints.astype(np.float32),
        joints_2d=j2d.astype(np.float32),
        joints_2d_valid=np.ones((2, 21), np.float32),
        hand_valid=np.ones(2, bool),
        bboxes=np.concatenate([lo, hi], 1).astype(np.float32),
        vertices=verts.astype(np.float32))
    if flip:
        results = RandomTwoHandFlip(prob=1.0)(results)
    crop = TwoHandCropAffine(input_size=(96, 96), test_mode=True)
    center, size = crop.get_box(results)
    crop.crop(results, center, size, rot=0.5)
    packed = PackTwoHandInputs()(results)
    sample = packed['data_samples']
    assert bool(sample.metainfo['flip']) is flip
    gt = sample.gt_hands
    sample.pred_hands = InstanceData(
        vertices=gt.vertices, joints_3d=gt.joints_3d)
    faces = mano.faces.numpy()

    # the camera of the original image takes the sample's points back
    k_draw, rot, back, swap = drawing_camera(sample.metainfo, 'original')
    assert swap is flip
    vv = gt.vertices.double().numpy() @ rot.T
    if swap:
        vv = vv[::-1]
    np.testing.assert_allclose(vv, verts, atol=1e-5)
    uv = gt.joints_2d.double().numpy() @ back[:, :2].T + back[:, 2]
    np.testing.assert_allclose(uv[::-1] if swap else uv, j2d, atol=1e-3)

    # on the original image the overlay covers where the hands project,
    # right hand in the right hand's colour
    drawn = vis.draw_sample(img, sample, draw_skeleton=False)
    overlay = drawn[:, :w]
    mesh_id = _mask(verts, faces, k, (h, w))
    changed = _changed(overlay, img)
    hit = mesh_id >= 0
    iou = (changed & hit).sum() / (changed | hit).sum()
    assert iou > 0.99
    right, left = overlay[mesh_id == 0], overlay[mesh_id == 1]
    assert (right[:, 0] > right[:, 2]).mean() > 0.99
    assert (left[:, 2] > left[:, 0]).mean() > 0.99

    # on the network input (packed BGR) it is the virtual camera's picture
    inp = packed['inputs'].numpy().transpose(1, 2, 0)[..., ::-1].copy()
    drawn_in = vis.draw_sample(inp, sample, draw_skeleton=False)
    v_virtual = gt.vertices.double().numpy()
    mesh_in = _mask(v_virtual, faces, sample.metainfo['cam_intrinsics'],
                    (96, 96))
    np.testing.assert_array_equal(
        _changed(drawn_in[:, :96], inp), mesh_in >= 0)


def test_image_space_resolution(vis):
    meta = dict(input_size=(64, 48), ori_shape=(100, 200))
    resolve = TwoHandLocalVisualizer.resolve_image_space
    assert resolve((48, 64), meta) == 'input'
    assert resolve((100, 200), meta) == 'original'
    assert resolve((48, 64), meta, 'original') == 'original'
    with pytest.raises(ValueError, match='neither the network input'):
        resolve((50, 50), meta)
    with pytest.raises(ValueError, match='image_space'):
        resolve((48, 64), meta, 'crop')


def test_faces_must_match_the_vertices(vis):
    sample = HandDataSample(
        metainfo=dict(cam_intrinsics=np.eye(3), input_size=(8, 8)))
    sample.pred_hands = InstanceData(vertices=torch.ones(2, 10, 3))
    with pytest.raises(ValueError, match='mano_model_path'):
        vis.draw_sample(np.zeros((8, 8, 3), np.uint8), sample)


# ----------------------------------------------------------------------------
# before / after refinement
# ----------------------------------------------------------------------------
PEN_RED = (225, 25, 25)


@pytest.fixture(scope='module')
def penetrating(mano):
    """The scene's hands with the left one pushed into the right one
    (what a stage-1 model might predict); float64 vertices / joints."""
    pose = torch.zeros(1, 2, 16, 3)
    pose[0, :, 0] = torch.tensor([np.pi / 2, 0.0, 0.0])
    transl = torch.tensor([[[-0.13, 0.02, 0.6], [-0.07, 0.03, 0.61]]])
    out = mano(pose, transl=transl)
    return (out.vertices[0].double().numpy(), out.joints[0].double().numpy())


def _before_after_sample(scene, penetrating, k, w, h, refined=True):
    sample = HandDataSample(metainfo=dict(cam_intrinsics=k, input_size=(w, h)))
    pred = InstanceData(
        vertices=torch.from_numpy(scene[0]).float(),
        joints_3d=torch.from_numpy(scene[1]).float(),
        unrefined_vertices=torch.from_numpy(penetrating[0]).float(),
        unrefined_joints_3d=torch.from_numpy(penetrating[1]).float())
    pred.set_metainfo(dict(refined=refined))
    sample.pred_hands = pred
    return sample


def _red(panel):
    p = panel.astype(int)
    return (p[..., 0] > 60) & (p[..., 1] < 0.3 * p[..., 0]) & (
        p[..., 2] < 0.3 * p[..., 0])


def test_penetrating_vertices_is_the_metric_inside_test(scene, penetrating,
                                                        mano):
    from mmhand2p.evaluation.functional import (MeshTopology, cap_holes,
                                                penetration_depth)
    from mmhand2p.visualization import penetrating_vertices
    faces = mano.faces.numpy()
    assert not penetrating_vertices(scene[0], faces).any()
    inside = penetrating_vertices(penetrating[0], faces)
    assert inside[0].sum() > 20 and inside[1].sum() > 20
    # the same vertices as the PenDist metric's (winding-number) inside test
    capped = [cap_holes(penetrating[0][i], faces[i]) for i in range(2)]
    topo = [MeshTopology(c[1]) for c in capped]
    query = torch.zeros(capped[0][0].shape[0], dtype=torch.bool)
    query[:778] = True
    da, db = penetration_depth(
        torch.from_numpy(capped[0][0])[None],
        torch.from_numpy(capped[1][0])[None], topo[0], topo[1], query, query,
        dtype=torch.float64)
    np.testing.assert_array_equal(inside[0], da[0, :778].numpy() > 0)
    np.testing.assert_array_equal(inside[1], db[0, :778].numpy() > 0)


def test_before_after_panels(scene, penetrating, mano, vis, monkeypatch):
    h, w = 120, 160
    k = np.array([[180.0, 0, 79.5], [0, 180.0, 59.5], [0, 0, 1]])
    image = np.full((h, w, 3), BG, np.uint8)
    sample = _before_after_sample(scene, penetrating, k, w, h)
    faces = mano.faces.numpy()

    drawn = vis.draw_sample(image, sample, draw_skeleton=False)
    assert drawn.shape == (h, 4 * w, 3)
    stage1, side1, refined, side2 = (drawn[:, i * w:(i + 1) * w]
                                     for i in range(4))
    label = np.zeros((h, w), bool)
    label[:32, :] = True  # two lines of text, top left

    # the refined half is the usual picture of the refined hands (they do
    # not penetrate: nothing is red), apart from the labels
    plain = HandDataSample(metainfo=sample.metainfo)
    plain.pred_hands = InstanceData(
        vertices=sample.pred_hands.vertices,
        joints_3d=sample.pred_hands.joints_3d)
    usual = vis.draw_sample(image, plain, draw_skeleton=False)
    assert usual.shape == (h, 2 * w, 3)
    np.testing.assert_array_equal(refined[~label], usual[:, :w][~label])
    assert not _red(refined).any() and not _red(side2).any()

    # the stage-1 half differs from it exactly where the left hands differ
    m1 = _mask(penetrating[0], faces, k, (h, w))
    m2 = _mask(scene[0], faces, k, (h, w))
    left_moved = ((m1 == 1) | (m2 == 1)) & ((m1 >= 0) != (m2 >= 0) |
                                            (m1 != m2))
    differ = _changed(stage1, refined)
    near_left = cv2.dilate(((m1 == 1) | (m2 == 1)).astype(np.uint8),
                           np.ones((5, 5), np.uint8)) > 0
    assert not (differ & ~near_left & ~label).any()
    assert (differ & left_moved & ~label).sum() > 0.95 * (left_moved
                                                          & ~label).sum()
    # the penetrating region is drawn in red, on the overlay and the side
    assert _red(stage1).sum() > 20 and _red(side1).sum() > 20
    assert (_red(stage1) & ~near_left).sum() == 0
    assert _changed(side1, side2)[40:].any()
    # one camera frames both side views: on all four hands
    import mmhand2p.visualization.local_visualizer as lv
    framed = []
    real = lv.side_view_camera

    def spy(points, *args, **kwargs):
        framed.append(np.asarray(points))
        return real(points, *args, **kwargs)

    monkeypatch.setattr(lv, 'side_view_camera', spy)
    vis.draw_sample(image, sample, draw_skeleton=False)
    assert len(framed) == 2 and framed[0].shape == (4 * 778, 3)
    np.testing.assert_array_equal(framed[0], framed[1])

    # without the stage-1 hands, or with show_unrefined=False: as before
    np.testing.assert_array_equal(
        vis.draw_sample(image, sample, draw_skeleton=False,
                        show_unrefined=False), usual)
    off = TwoHandLocalVisualizer(name='no_before_after', show_unrefined=False)
    np.testing.assert_array_equal(
        off.draw_sample(image, sample, draw_skeleton=False), usual)

    # labels: the gate's decision is stated
    lines = []
    monkeypatch.setattr(vis, '_label', lambda canvas, text: lines.append(
        list(text)))
    vis.draw_sample(image, sample)
    assert lines[0][0] == 'stage 1' and lines[1][0] == 'refined'
    assert int(lines[0][1].split(': ')[1]) > 40
    assert lines[1][1] == 'penetrating verts: 0'
    lines.clear()
    vis.draw_sample(
        image, _before_after_sample(scene, penetrating, k, w, h, False))
    assert lines[1][0] == 'refined (gate closed: unchanged)'

    # add_datasample writes the wide picture
    returned = vis.add_datasample('before_after', image, sample,
                                  out_file=None)
    assert returned.shape == (h, 4 * w, 3)
