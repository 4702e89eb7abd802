# Copyright (c) mmhand2p contributors. All rights reserved.
"""The overlay's box labels never overlap each other and never leave the
picture (boxes at the top edge, identical boxes, tiny pictures)."""
import itertools

import cv2
import numpy as np
import pytest

from mmhand2p.apis.inferencer import (_FONT, box_label_layout, draw_overlay,
                                      place_labels)


def _check(rects, image_size):
    """Every placed rectangle inside the picture, no two sharing a pixel."""
    h, w = image_size
    placed = [r for r in rects if r is not None]
    for x, y, rw, rh in placed:
        assert 0 <= x and 0 <= y and x + rw <= w and y + rh <= h, (rects,
                                                                   image_size)
    for a, b in itertools.combinations(placed, 2):
        no_x = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0]
        no_y = a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
        assert no_x or no_y, (a, b)


CASES = {
    # the README's picture: a right and a left box sharing the top left
    # corner (the labels used to print over each other: "01rieft 0.37")
    'shared_corner': ([[293, 140, 480, 397], [308, 143, 483,
                                              407]], (480, 640)),
    'identical': ([[100, 100, 300, 300]] * 2, (480, 640)),
    'four_identical': ([[100, 100, 300, 300]] * 4, (480, 640)),
    'top_edge': ([[0, 0, 200, 150], [5, 0, 210, 160]], (480, 640)),
    'bottom_right_corner': ([[500, 400, 640, 480]] * 2, (480, 640)),
    'outside_the_picture': ([[-50, -40, 20, 10], [600, 470, 700,
                                                  520]], (480, 640)),
    'small_picture': ([[2, 1, 40, 30], [3, 2, 41, 31]], (48, 64)),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_place_labels_disjoint_and_inside(name):
    boxes, size = CASES[name]
    sizes = [(60, 14)] * len(boxes)
    rects = place_labels(np.asarray(boxes, float), sizes, size)
    _check(rects, size)
    if name != 'small_picture':
        assert all(r is not None for r in rects)


def test_place_labels_prefers_above_the_box():
    rects = place_labels(
        np.array([[100., 100, 300, 300], [400, 100, 600, 300]]),
        [(60, 14)] * 2, (480, 640))
    assert rects == [(100, 84, 60, 14), (400, 84, 60, 14)]
    # at the top edge: below, not cut off at the top
    rects = place_labels(
        np.array([[100., 0, 300, 200]]), [(60, 14)], (480, 640))
    assert rects == [(100, 203, 60, 14)]


def test_place_labels_too_large_or_no_room():
    # a label larger than the picture is left out
    assert place_labels(np.array([[0., 0, 10, 10]]), [(100, 14)],
                        (48, 64)) == [None]
    # room for exactly two 32 x 24 labels in a 64 x 24 picture, not three
    rects = place_labels(
        np.array([[0., 0, 10, 10]] * 3), [(32, 24)] * 3, (24, 64))
    assert sorted(rects[:2]) == [(0, 0, 32, 24), (32, 0, 32, 24)]
    assert rects[2] is None


@pytest.mark.parametrize('size, thick', [((480, 640), 2), ((240, 320), 1),
                                         ((120, 160), 1), ((36, 48), 1),
                                         ((8, 10), 1)])
def test_layout_rects_hold_the_drawn_text(size, thick):
    """The rectangles are where cv2.putText really draws (so disjoint
    rectangles mean disjoint text): every label pixel lies inside its
    rectangle."""
    boxes = np.array([[0., 0, size[1] * 0.6, size[0] * 0.6]] * 2)
    texts = ['0 right 0.41', '1 left 0.37']
    layout = box_label_layout(texts, boxes, size, thick)
    _check(layout['rects'], size)
    if size[0] >= 120:
        assert all(r is not None for r in layout['rects'])
    else:  # narrower than a label even at the smallest font: left out
        assert layout['rects'] == [None, None]
        assert layout['scale'] == 0.25
    for text, rect, org in zip(texts, layout['rects'], layout['origins']):
        if rect is None:
            continue
        canvas = np.zeros(size, np.uint8)
        cv2.putText(canvas, text, org, _FONT, layout['scale'], 255,
                    layout['outline'], cv2.LINE_AA)
        ys, xs = np.nonzero(canvas)
        assert len(ys) > 0
        x, y, w, h = rect
        inside = np.zeros(size, bool)
        inside[y:y + h, x:x + w] = True
        assert inside[ys, xs].all(), (text, rect)


def test_draw_overlay_tiny_and_top_edge_pictures():
    """draw_overlay (no meshes) with identical boxes at the top edge: each
    label is drawn in its rectangle of the layout, in its hand's colour,
    with no pixel of the other hand's colour there (the boxes do not cross
    the label rectangles here: those go below the boxes)."""
    from mmhand2p.apis.inferencer import _BOX_COLORS
    faces = np.zeros((2, 1, 3), np.int64)
    for h, w in ((480, 640), (240, 320), (20, 24)):
        image = np.zeros((h, w, 3), np.uint8)
        boxes = np.array([[0., 0, w * 0.5, h * 0.5]] * 2)
        out = draw_overlay(
            image,
            np.full((2, 3, 3), np.nan),
            np.array([0, 1]),
            faces,
            np.eye(3),
            boxes,
            np.array([0.9, 0.8]),
            max_side=None)
        assert out.shape == (h, w, 3)
        thick = max(1, int(round(min(h, w) / 300)))
        layout = box_label_layout(['0 right 0.90', '1 left 0.80'], boxes,
                                  (h, w), thick)
        _check(layout['rects'], (h, w))
        for i, rect in enumerate(layout['rects']):
            if h < 100:  # too small for any label: boxes only
                assert rect is None
                continue
            x, y, rw, rh = rect
            patch = out[y:y + rh, x:x + rw].reshape(-1, 3).astype(int)
            # anti-aliased text keeps the sign of red - blue of its colour
            # (right hands: red > blue, left hands: blue > red)
            red_minus_blue = patch[:, 2] - patch[:, 0]
            sign = np.sign(_BOX_COLORS[i][2] - _BOX_COLORS[i][0])
            own = (sign * red_minus_blue > 20).sum()
            other = (-sign * red_minus_blue > 20).sum()
            assert own > 20 and other == 0, (h, i, own, other)
