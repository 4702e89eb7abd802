# Copyright (c) mmhand2p contributors. All rights reserved.
"""The synthetic two-hand data: the procedural hand model in MANO's format
(:mod:`.hand_model`) and the generator of a two-hand dataset in
InterHand2.6M's file format: scene sampling (:mod:`.scene`), rendering
(:mod:`.render`), annotation writers (:mod:`.writers`), run by
:mod:`.generator`.

It sits above ``visualization`` (it renders with ``render_meshes``) and
``models`` (it poses hands with ``MANOLayer``), and reuses the shared
geometry and conventions (winding numbers, Rodrigues, LBS, kinematic tree,
fingertip ids, mirroring) instead of private copies.
"""
from .generator import (COCO_CATEGORIES, DEFAULT_HAND_TYPE_PROBS, GAP_MODES,
                        HAND_TYPES, SEG_BACKGROUND, SEG_LEFT, SEG_RIGHT,
                        SPLITS, coco_boxes_path, count_inside, extra_paths,
                        generate_synthetic_interhand, hand_contact,
                        hand_orientation, load_extras, place_second_hand,
                        random_background, render_view, sample_camera_rig,
                        sample_hand_orientations, sample_hand_scene,
                        sample_skin_tones, write_coco_hand_boxes)

__all__ = [
    'SPLITS', 'HAND_TYPES', 'SEG_BACKGROUND', 'SEG_RIGHT', 'SEG_LEFT',
    'COCO_CATEGORIES', 'DEFAULT_HAND_TYPE_PROBS', 'GAP_MODES',
    'sample_camera_rig', 'hand_orientation', 'sample_hand_orientations',
    'sample_skin_tones', 'random_background', 'place_second_hand',
    'count_inside', 'hand_contact', 'sample_hand_scene', 'render_view',
    'extra_paths', 'load_extras', 'generate_synthetic_interhand',
    'write_coco_hand_boxes', 'coco_boxes_path'
]
