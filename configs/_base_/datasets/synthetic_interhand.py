# The synthetic two-hand set (InterHand2.6M's file format, rendered by
# tools/dataset_converters/make_synthetic_interhand.py, see
# docs/datasets.md) read by InterHand26MDataset: dataset, pipelines and
# dataloaders. Models and schedules come from the configs that inherit this.
dataset_type = 'InterHand26MDataset'
data_root = 'data/synthetic_interhand/'
input_size = (256, 256)
# the target conventions (mmhand2p.codecs.TwoHandCodec): one variable for the
# pipeline's GenerateTwoHandTargets(encoder=codec) and the head's
# decoder=codec, so the two cannot disagree
codec = dict(type='TwoHandCodec', left_as_right=False)

# the training pipeline of docs/data_pipeline.md (the flip comes before the
# crop, which composes the pending image flip into its single warp)
train_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='RandomTwoHandFlip', prob=0.5),
    dict(
        type='TwoHandCropAffine',
        input_size=input_size,
        padding=1.25,
        scale_range=(0.8, 1.2),
        rotate_range=30,
        rotate_prob=0.6,
        shift_factor=0.1),
    dict(
        type='ColorJitter',
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
        hue=0.02,
        prob=0.8),
    dict(type='MotionBlur', kernel_size=(3, 9), prob=0.3),
    dict(type='GenerateTwoHandTargets', encoder=codec),
    dict(type='PackTwoHandInputs'),
]
val_pipeline = [
    dict(type='LoadTwoHandImage'),
    dict(type='TwoHandCropAffine', input_size=input_size, test_mode=True),
    dict(type='PackTwoHandInputs'),
]
test_pipeline = val_pipeline

# every synthetic frame has MANO for its present hands; the set is rendered
# with the bundled hand model and must be read with the model it was
# generated with (mano_model_path=None = bundled)
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        require_mano=True,
        mano_model_path=None,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        require_mano=True,
        mano_model_path=None,
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        require_mano=True,
        mano_model_path=None,
        test_mode=True,
        pipeline=test_pipeline))

# val_evaluator / test_evaluator: the two-hand metrics (MPJPE, MPVPE, MRRPE,
# penetration) land separately; a config that validates sets e.g.
# val_evaluator = dict(type='<the two-hand metric>', ...)
# test_evaluator = val_evaluator
