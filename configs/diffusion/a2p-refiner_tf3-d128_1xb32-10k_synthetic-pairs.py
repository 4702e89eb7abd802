# A2P stage 2 ("Learning to Align and Refine", arXiv 2503.17788): the
# penetration-aware two-hand diffusion refiner, trained on the synthetic set
# in a size that trains on one CPU core in about 5 minutes
# (docs/diffusion_refiner.md).
# The sampler iterates the pairs endlessly (InfiniteSampler).
# The pairs come from tools/misc/make_penetration_pairs.py:
#
#   python tools/misc/make_penetration_pairs.py noise \
#       --data-root data/synthetic_interhand --split train \
#       --out data/synthetic_interhand/penetration_pairs/train_noise.npz
#
# (add train_estimator.npz, made with the `estimator` mode from a stage-1
# checkpoint, to train_pairs when one exists). Paper facts: x0 prediction,
# MLP timestep embedding, fully connected encoders for the noisy hands and
# the condition, 1000 steps, cosine schedule, ||X0 - D(X_t, t, c)||^2; the
# model size, optimiser and schedule here are our choices.
_base_ = ['../_base_/default_runtime.py']

pairs_root = 'data/synthetic_interhand/penetration_pairs/'
train_pairs = [pairs_root + 'train_noise.npz']
# held-out pairs (make_penetration_pairs.py noise --split val --seed 1):
# tools/test.py reports errors and penetration before / after refinement
test_pairs = [pairs_root + 'val_noise.npz']

model = dict(
    type='TwoHandDiffusionRefiner',
    # normalisation statistics of the training pairs (saved as buffers in
    # every checkpoint)
    stats_file=train_pairs,
    denoiser=dict(
        type='TwoHandDenoiser',
        embed_dims=128,
        num_layers=3,
        num_heads=4,
        ffn_dims=256,
        dropout=0.1),
    schedule=dict(type='CosineNoiseSchedule', num_timesteps=1000),
    # the synthetic set is rendered with the bundled hand model
    body_model=dict(type='MANOLayer', model_path=None),
    sampler=dict(
        num_steps=50,
        start_t=None,  # T - 1: from (almost) pure noise
        init='condition',
        eta=0.0,
        guidance_weight=100.0,  # lambda (normalised parameter units)
        guidance_iters=1,
        guidance_last_steps=None),  # every step, as in A2P
    guidance_loss=dict(
        type='HybridCollisionLoss',
        d_threshold=0.005,
        angle_threshold=90.0,
        rho=0.01),
    gate=dict(iou_thr=0.0, check='collision', min_pairs=1),
    anchor='mean',
    seed=0)

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='PenetrationPairsDataset',
        ann_file=train_pairs,
        mirror_prob=0.5,
        rotate_range=0.0))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=10000)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.01, by_epoch=False),
    dict(
        type='CosineAnnealingLR',
        begin=100,
        end=10000,
        T_max=9900,
        eta_min=1e-5,
        by_epoch=False),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(
        type='SafeCheckpointHook', interval=2000, by_epoch=False,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)

test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='PenetrationPairsDataset', ann_file=test_pairs, test_mode=True))
test_evaluator = dict(type='RefinerPairMetric', mano_model_path=None)
test_cfg = dict(type='TestLoop')
