# Copyright (c) mmhand2p contributors. All rights reserved.
"""tools/dataset_converters/coco_wholebody_to_hand_boxes.py on a hand-made
COCO-WholeBody file, read back by mmdet's CocoDataset."""
import importlib.util
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'dataset_converters',
                'coco_wholebody_to_hand_boxes.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('wb_to_hands_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _person(pid, image_id, right=None, left=None, iscrowd=0):
    """A COCO-WholeBody person annotation (only the fields the tool reads
    plus a few it must ignore)."""
    return dict(
        id=pid,
        image_id=image_id,
        category_id=1,
        iscrowd=iscrowd,
        bbox=[0, 0, 100, 200],
        keypoints=[0] * 51,
        num_keypoints=0,
        righthand_box=right or [0, 0, 0, 0],
        righthand_valid=right is not None,
        lefthand_box=left or [0, 0, 0, 0],
        lefthand_valid=left is not None,
        face_box=[0, 0, 0, 0],
        face_valid=False)


WHOLEBODY = dict(
    info=dict(description='hand-made'),
    images=[
        dict(id=11, file_name='000011.jpg', width=320, height=240),
        dict(id=12, file_name='000012.jpg', width=320, height=240),
        dict(id=13, file_name='000013.jpg', width=320, height=240),
    ],
    annotations=[
        # both hands
        _person(101, 11, right=[10, 20, 30, 40], left=[100, 50, 20, 25]),
        # only the left hand valid
        _person(102, 11, left=[200.5, 60.25, 12, 10]),
        # a tiny right hand (kept unless --min-size), a crowd's hands (never)
        _person(103, 12, right=[5, 5, 2, 3]),
        _person(104, 12, right=[50, 50, 20, 20], iscrowd=1),
        # valid flag set but an empty box: dropped
        dict(_person(105, 12), righthand_valid=True),
        # image 13 has no person: kept as a negative
    ],
    categories=[dict(id=1, name='person')])


def test_convert_and_read_with_mmdet(tmp_path):
    tool = _load_tool()
    src = tmp_path / 'coco_wholebody_val_v1.0.json'
    src.write_text(json.dumps(WHOLEBODY))
    dst = tmp_path / 'out' / 'hands.json'
    assert tool.main([str(src), str(dst)]) == 0
    out = json.loads(dst.read_text())

    assert out['categories'] == [
        dict(id=1, name='right_hand', supercategory='hand'),
        dict(id=2, name='left_hand', supercategory='hand'),
    ]
    assert [im['id'] for im in out['images']] == [11, 12, 13]
    got = [(a['image_id'], a['category_id'], a['bbox'], a['person_id'])
           for a in out['annotations']]
    assert got == [
        (11, 1, [10.0, 20.0, 30.0, 40.0], 101),
        (11, 2, [100.0, 50.0, 20.0, 25.0], 101),
        (11, 2, [200.5, 60.25, 12.0, 10.0], 102),
        (12, 1, [5.0, 5.0, 2.0, 3.0], 103),
    ]
    assert [a['id'] for a in out['annotations']] == [1, 2, 3, 4]
    assert out['annotations'][0]['area'] == 30.0 * 40.0
    assert all(a['iscrowd'] == 0 for a in out['annotations'])

    # mmdet reads it: labels 0 = right_hand, 1 = left_hand
    from mmdet.datasets import CocoDataset
    dataset = CocoDataset(
        ann_file=str(dst),
        data_root=str(tmp_path),
        metainfo=dict(classes=('right_hand', 'left_hand')),
        data_prefix=dict(img=''),
        filter_cfg=None,
        pipeline=[],
        lazy_init=False)
    assert len(dataset) == 3
    first = dataset.get_data_info(0)
    assert [i['bbox_label'] for i in first['instances']] == [0, 1, 1]
    # mmdet converts xywh to xyxy
    assert first['instances'][0]['bbox'] == [10.0, 20.0, 40.0, 60.0]


def test_min_size_and_errors(tmp_path):
    tool = _load_tool()
    out = tool.wholebody_to_hand_boxes(WHOLEBODY, min_size=4)
    assert [a['person_id'] for a in out['annotations']] == [101, 101, 102]
    with pytest.raises(KeyError, match='annotations'):
        tool.wholebody_to_hand_boxes(dict(images=[]))
    missing = str(tmp_path / 'nope.json')
    assert tool.main([missing, str(tmp_path / 'o.json')]) == 1
    assert not (tmp_path / 'o.json').exists()
