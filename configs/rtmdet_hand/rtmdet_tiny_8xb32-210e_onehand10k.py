# RTMDet-tiny, ONE class 'hand', on OneHand10K (8 GPUs x 32 images).
#
# OneHand10K labels one hand per image and says nothing about its side, so
# this detector finds hands but cannot tell right from left: its label 0
# means "a hand", not "right hand". It is not a drop-in detector for the
# two-hand pipeline (which takes handedness from the detector's labels); use
# it where handedness comes from elsewhere, as a pre-training stage for the
# two-class detector (load_from this checkpoint into a 2-class config: the
# classification convs are re-initialised), or pool it with a two-class set
# only after relabelling (docs/rtmdet_hand.md). Because the class is
# side-agnostic, horizontal flips are safe here and mmdet's RandomFlip is
# kept.
#
# Data: mmpose's OneHand10K layout (data/onehand10k/annotations/
# onehand10k_{train,test}.json, COCO format, one box per hand, file names
# relative to data/onehand10k/). mmdet's CocoDataset matches categories by
# name: if your annotation file does not name its category 'hand', change
# `classes` below to that name.
_base_ = ['./_base_/hand-boxes_coco-format.py']

data_root = 'data/onehand10k/'
backend_args = None
metainfo = dict(classes=('hand', ), palette=[(255, 160, 64)])

model = dict(bbox_head=dict(num_classes=1))

# one hand per image, mostly large: 320 input (the RTMDet hand detector of
# RTMPose uses the same), mmdet's augmentation (mosaic, mixup, flip)
input_size = 320
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='CachedMosaic',
        img_scale=(input_size, input_size),
        pad_val=114.0,
        max_cached_images=20,
        random_pop=False),
    dict(
        type='RandomResize',
        scale=(input_size * 2, input_size * 2),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(input_size, input_size)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),  # safe: one side-agnostic class
    dict(
        type='Pad',
        size=(input_size, input_size),
        pad_val=dict(img=(114, 114, 114))),
    dict(
        type='CachedMixUp',
        img_scale=(input_size, input_size),
        ratio_range=(1.0, 1.0),
        max_cached_images=10,
        random_pop=False,
        pad_val=(114, 114, 114),
        prob=0.5),
    dict(type='PackDetInputs')
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=(input_size, input_size),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(input_size, input_size)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='Pad',
        size=(input_size, input_size),
        pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(
        type='Pad',
        size=(input_size, input_size),
        pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# mmdet's 32 training / 5 validation images and 10 workers per GPU come
# from ./_base_/hand-boxes_coco-format.py; `metainfo` sets both keys
# (classes, palette) of the base's two-class metainfo, so it replaces it
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/onehand10k_train.json',
        data_prefix=dict(img=''),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/onehand10k_test.json',
        data_prefix=dict(img=''),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(ann_file=data_root + 'annotations/onehand10k_test.json')
test_evaluator = val_evaluator

# mmdet's RTMDet schedule shortened to 210 epochs (the length of mmpose's
# OneHand10K keypoint schedules): AdamW 0.004 for batch 256, 1000 warm-up
# iterations, cosine decay over the second half, 15 final epochs without
# mosaic/mixup
max_epochs = 210
stage2_num_epochs = 15
base_lr = 0.004
interval = 10
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=interval,
    dynamic_intervals=[(max_epochs - stage2_num_epochs, 1)])
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0e-5,
        by_epoch=False,
        begin=0,
        end=1000),
    dict(
        type='CosineAnnealingLR',
        eta_min=base_lr * 0.05,
        begin=max_epochs // 2,
        end=max_epochs,
        T_max=max_epochs // 2,
        by_epoch=True,
        convert_to_iter_based=True),
]
default_hooks = dict(
    checkpoint=dict(
        type='mmhand2p.SafeCheckpointHook',
        interval=interval,
        max_keep_ckpts=3))
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=max_epochs - stage2_num_epochs,
        switch_pipeline=train_pipeline_stage2)
]
