# RTMDet-tiny with two hand classes: the shared part of configs/rtmdet_hand.
#
# Why this file and not ``_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_
# coco.py'``: mmengine 0.10.7 resolves ``mmdet::`` through ``pkg_resources``
# (``mmengine.utils.package_utils.is_installed``), which setuptools >= 81 no
# longer ships, and torch 2.13 needs setuptools >= 77, so on a current
# install ``Config.fromfile`` fails with ``No module named 'pkg_resources'``.
# The values below are mmdet 3.3.0's (``mmdet/.mim/configs/rtmdet/
# rtmdet_l_8xb32-300e_coco.py`` for the architecture, losses, assigner and
# optimizer; ``rtmdet_tiny_8xb32-300e_coco.py`` for the tiny widths), so the
# model is exactly mmdet's RTMDet-tiny with ``num_classes=2`` and its
# checkpoints load into mmdet's tooling and back.
#
# Classes: label 0 = right_hand, 1 = left_hand (COCO category ids 1 and 2 in
# every hand-box file of this repo), the order of the hand axis everywhere in
# mmhand2p (0 right, 1 left). Handedness comes from the detector, so a plain
# ``RandomFlip`` must never appear in a two-class pipeline: it mirrors a
# right hand into a left one without changing its label (docs/rtmdet_hand.md).
#
# Scope: the whole config is an mmdet config (``default_scope='mmdet'``:
# CocoDataset, mmdet transforms, CocoMetric, DetLocalVisualizer), so it also
# works with mmdet's own tools and ``mmhand2p.apis.init_detector``. The model
# root carries ``_scope_='mmdet'`` as well, so ``cfg.model`` builds unchanged
# from an mmhand2p-scoped config (e.g. as the detector of a detect-then-
# reconstruct model) or through ``mmhand2p.registry.MODELS``.
default_scope = 'mmdet'

# mmhand2p.engine allow-lists what mmengine checkpoints pickle, so resuming
# and tools/test.py load them with torch.load(weights_only=True)
custom_imports = dict(imports=['mmhand2p.engine'], allow_failed_imports=False)

backend_args = None
hand_metainfo = dict(
    classes=('right_hand', 'left_hand'),
    palette=[(255, 64, 64), (64, 64, 255)])  # right red, left blue (RGB)

model = dict(
    _scope_='mmdet',
    type='RTMDet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # BGR order: images are loaded by cv2 and not converted
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False,
        batch_augments=None),
    backbone=dict(
        type='CSPNeXt',
        arch='P5',
        expand_ratio=0.5,
        deepen_factor=0.167,
        widen_factor=0.375,
        channel_attention=True,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True),
        # mmdet initialises the backbone from an ImageNet checkpoint
        # (init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=
        # '.../cspnext-tiny_imagenet_600e.pth')). It is a URL and nothing can
        # be downloaded here, so it is left out: set it to a local file to
        # start from ImageNet weights.
        init_cfg=None),
    neck=dict(
        type='CSPNeXtPAFPN',
        in_channels=[96, 192, 384],
        out_channels=96,
        num_csp_blocks=1,
        expand_ratio=0.5,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)),
    bbox_head=dict(
        type='RTMDetSepBNHead',
        num_classes=2,  # 0 right_hand, 1 left_hand
        in_channels=96,
        stacked_convs=2,
        feat_channels=96,
        anchor_generator=dict(
            type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(
            type='QualityFocalLoss',
            use_sigmoid=True,
            beta=2.0,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False,
        exp_on_reg=False,
        share_conv=True,
        pred_kernel_size=1,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)),
    train_cfg=dict(
        assigner=dict(type='DynamicSoftLabelAssigner', topk=13),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=30000,
        min_bbox_size=0,
        score_thr=0.001,
        nms=dict(type='nms', iou_threshold=0.65),
        max_per_img=300),
)

# mmdet's RTMDet optimizer: AdamW, lr 0.004 for a total batch of 256
# (8 GPUs x 32), no weight decay on norms and biases
base_lr = 0.004
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True))
auto_scale_lr = dict(enable=False, base_batch_size=256)

val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# runtime (mmdet's default_runtime.py)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmhand2p's atomic CheckpointHook (a kill mid-save keeps the previous
    # checkpoint and last_checkpoint valid; refuses NaN weights)
    checkpoint=dict(
        type='mmhand2p.SafeCheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # a NaN / Inf loss or gradient stops the run before the optimizer step
    finite_check=dict(type='mmhand2p.FiniteLossHook', nonfinite='raise'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
