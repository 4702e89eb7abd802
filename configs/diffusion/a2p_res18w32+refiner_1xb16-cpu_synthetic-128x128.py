# Both A2P stages in the synthetic world, sized for the embedded demo
# (docs/model_zoo.md): the half-width ResNet-18 stage-1 model of
# configs/a2p/synthetic/a2p_res18w32_1xb16-cpu_synthetic-128x128.py with the
# synthetic diffusion refiner of
# configs/diffusion/a2p-refiner_tf3-d128_1xb32-10k_synthetic-pairs.py at test
# time (only on samples whose hand boxes overlap and whose hands penetrate).
#
# Both parts are trained with their own configs; their weights meet in one
# checkpoint (tools/misc/make_demo_checkpoints.py), so the refiner is built
# here without statistics or checkpoint: both are buffers of that file.
_base_ = ['../a2p/synthetic/a2p_res18w32_1xb16-cpu_synthetic-128x128.py']

model = dict(
    test_cfg=dict(refine=True),
    refiner=dict(
        type='TwoHandDiffusionRefiner',
        stats_file=None,
        checkpoint=None,
        frozen=True,
        denoiser=dict(
            type='TwoHandDenoiser',
            embed_dims=128,
            num_layers=3,
            num_heads=4,
            ffn_dims=256,
            dropout=0.1),
        schedule=dict(type='CosineNoiseSchedule', num_timesteps=1000),
        body_model=dict(type='MANOLayer', model_path=None),
        sampler=dict(num_steps=50, guidance_weight=100.0),
        guidance_loss=dict(
            type='HybridCollisionLoss',
            d_threshold=0.005,
            angle_threshold=90.0,
            rho=0.01),
        gate=dict(iou_thr=0.0, check='collision', min_pairs=1),
        anchor='mean',
        seed=0,
        keep_unrefined=True))
