# A2P stage 1 ("Learning to Align and Refine", arXiv 2503.17788), the
# paper's model on InterHand2.6M only (the paper trains on five datasets:
# InterHand2.6M, Re:InterHand, COCO-WholeBody, FreiHAND and HO-3D; this is
# a subset until they are added): ResNet-50 image features, a fusion
# alignment encoder (its own ResNet-50) distilling keypoint / segmentation /
# depth priors of frozen Sapiens teachers, transformer fusion, two-hand MANO
# regressor with relative translation. AdamW lr 1e-4, x0.1 at epoch 4,
# batch 48 on 4 GPUs (paper facts). The number of epochs is not stated in
# the paper; 6 is our choice.
_base_ = [
    '../_base_/default_runtime.py', '../_base_/datasets/interhand26m.py'
]

# local Sapiens checkpoints (download them first; see docs/a2p.md). Their
# existence is checked when the model is built, before training starts.
# Size: the paper's summary names Sapiens 1B; this config uses 0.3B, our
# choice: the smallest Sapiens, three of which run on every training batch
# (or once per sample into the feature cache) at 1024 x 768; 1B has about
# 3x the parameters and 1536-channel features (1.5x the cache). Not
# measured which distils better. For 1B: sapiens_arch = '1b', the
# sapiens_1b_{pose,seg,depth}.pth files below and teacher_channels=1536.
# Teachers letterbox the square crop into 1024 x 768 (768 x 768 + padding)
# and read rows 8-56 of the 64 x 48 map back, area-pooled onto the FAE grid
# (input_mode / downsample; 'stretch' / 'bilinear' is the old behaviour).
sapiens_arch = '0.3b'
sapiens_root = 'data/pretrained/sapiens/'
teachers = dict(
    keypoint=dict(
        type='SapiensTeacher',
        prior='keypoint',
        arch=sapiens_arch,
        checkpoint=sapiens_root + 'sapiens_0.3b_pose.pth'),
    segmentation=dict(
        type='SapiensTeacher',
        prior='segmentation',
        arch=sapiens_arch,
        checkpoint=sapiens_root + 'sapiens_0.3b_seg.pth'),
    depth=dict(
        type='SapiensTeacher',
        prior='depth',
        arch=sapiens_arch,
        checkpoint=sapiens_root + 'sapiens_0.3b_depth.pth'),
)

model = dict(
    type='TopDownTwoHandReconstructor',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='mmpose.ResNet',
        depth=50,
        out_indices=(3, ),
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        type='FusionAlignmentNeck',
        in_channels=2048,
        embed_dims=256,
        priors=('keypoint', 'segmentation', 'depth'),
        teachers=teachers,
        teacher_channels=1024,  # Sapiens 0.3B width
        fae=dict(
            type='mmpose.ResNet',
            depth=50,
            out_indices=(3, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet50')),
        fae_channels=2048,
        prior_source='fae',
        num_layers=4,
        num_heads=8,
        ffn_dims=1024,
        dropout=0.1),
    head=dict(
        type='TwoHandMANOHead',
        in_channels=256,
        num_layers=2,
        num_heads=8,
        ffn_dims=1024,
        body_model=dict(
            type='MANOLayer', model_path={{_base_.mano_model_path}}),
        # the codec of the dataset config's GenerateTwoHandTargets
        # (left_as_right=True, depth_range=0.4, crop_extent=0.25)
        decoder={{_base_.codec}}))

train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=1)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001,
         by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=6, milestones=[4], gamma=0.1,
         by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=48)
default_hooks = dict(
    checkpoint=dict(save_best='a2p/MPJPE_all', rule='less', max_keep_ckpts=2))
