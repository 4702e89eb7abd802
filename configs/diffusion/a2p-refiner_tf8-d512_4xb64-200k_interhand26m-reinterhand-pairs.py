# A2P stage 2 in the paper's setting: the two-hand diffusion refiner trained
# on pairs from InterHand2.6M and Re:InterHand, made the two ways of the
# paper (docs/diffusion_refiner.md):
#   (1) outputs of a weaker two-hand estimator that penetrate, as the
#       condition, with the ground truth as X0 (`estimator` mode of
#       tools/misc/make_penetration_pairs.py, from a stage-1 checkpoint);
#   (2) ground-truth MANO with noise added until the hands penetrate
#       (`noise` mode).
# Paper facts: transformer denoiser predicting x0, MLP timestep embedding,
# fully connected encoders for the noisy hands and the condition, 1000 steps,
# cosine schedule, ||X0 - D(X_t, t, c)||^2, DDIM with collision-gradient
# guidance, refinement only when the boxes overlap (IoU > 0) and the hands
# penetrate. Not stated in the paper (our choices): the denoiser's size
# (MDM's: 8 layers, 512 channels), the optimiser, batch, schedule length and
# the guidance constants.
_base_ = ['./a2p-refiner_tf3-d128_1xb32-10k_synthetic-pairs.py']

interhand_pairs = 'data/interhand2.6m/penetration_pairs/'
reinterhand_pairs = 'data/reinterhand/penetration_pairs/'
train_pairs = [
    interhand_pairs + 'train_noise.npz',
    interhand_pairs + 'train_estimator.npz',
    reinterhand_pairs + 'train_noise.npz',
    reinterhand_pairs + 'train_estimator.npz',
]
# held-out pairs for tools/test.py (the reconstruction metrics of the paper
# come from configs/diffusion/a2p_res50+refiner_...)
test_pairs = [
    interhand_pairs + 'test_noise.npz',
    interhand_pairs + 'test_estimator.npz',
]

model = dict(
    stats_file=train_pairs,
    denoiser=dict(
        embed_dims=512, num_layers=8, num_heads=4, ffn_dims=1024, dropout=0.1),
    # the MANO model of the annotations (tools/misc/convert_mano.py)
    body_model=dict(type='MANOLayer', model_path='data/mano'))

train_dataloader = dict(
    batch_size=64,  # x 4 GPUs
    num_workers=4,
    persistent_workers=True,
    dataset=dict(ann_file=train_pairs))
test_dataloader = dict(batch_size=64, dataset=dict(ann_file=test_pairs))
test_evaluator = dict(type='RefinerPairMetric', mano_model_path='data/mano')

train_cfg = dict(type='IterBasedTrainLoop', max_iters=200000)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(
        type='LinearLR', begin=0, end=2000, start_factor=0.01, by_epoch=False),
    dict(
        type='CosineAnnealingLR',
        begin=2000,
        end=200000,
        T_max=198000,
        eta_min=1e-6,
        by_epoch=False),
]
auto_scale_lr = dict(base_batch_size=256)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=10000, max_keep_ckpts=3))
randomness = dict(seed=None)
