# A2P, both stages, on InterHand2.6M: the stage-1 model of
# configs/a2p/a2p_res50_4xb12-6e_interhand26m-256x256.py with the trained
# diffusion refiner at test time (the reconstructor calls
# refiner.refine(preds, data_samples) on every test batch; the refiner runs
# on the samples whose hand boxes overlap and whose hands penetrate).
#
#   CFG=configs/diffusion/a2p_res50+refiner_4xb12-6e_interhand26m-256x256.py
#   python tools/test.py $CFG \
#       work_dirs/a2p_res50_4xb12-6e_interhand26m-256x256/best.pth
#   # the same without the refiner (before/after):
#   ... --cfg-options model.test_cfg.refine=False
#
# Stage 2 never trains here: the refiner is frozen and loaded from its own
# checkpoint (configs/diffusion/a2p-refiner_tf8-d512_..., tools/train.py).
_base_ = ['../a2p/a2p_res50_4xb12-6e_interhand26m-256x256.py']

refiner_checkpoint = ('work_dirs/a2p-refiner_tf8-d512_4xb64-200k_'
                      'interhand26m-reinterhand-pairs/iter_200000.pth')

model = dict(
    test_cfg=dict(refine=True),
    refiner=dict(
        type='TwoHandDiffusionRefiner',
        checkpoint=refiner_checkpoint,
        frozen=True,
        denoiser=dict(
            type='TwoHandDenoiser',
            embed_dims=512,
            num_layers=8,
            num_heads=4,
            ffn_dims=1024,
            dropout=0.1),
        schedule=dict(type='CosineNoiseSchedule', num_timesteps=1000),
        body_model=dict(
            type='MANOLayer', model_path={{_base_.mano_model_path}}),
        sampler=dict(num_steps=50, guidance_weight=100.0),
        guidance_loss=dict(
            type='HybridCollisionLoss',
            d_threshold=0.005,
            angle_threshold=90.0,
            rho=0.01),
        gate=dict(iou_thr=0.0, check='collision', min_pairs=1),
        anchor='mean',
        seed=0))

# before and after refinement in one test run: the refiner keeps the stage-1
# meshes as pred_hands.unrefined_vertices
val_evaluator = [
    dict(type='TwoHandMetric', protocol='a2p'),
    dict(
        type='TwoHandMetric',
        protocol='a2p',
        pred_keys=('unrefined_joints_3d', 'unrefined_vertices'),
        prefix='two_hand_unrefined'),
    dict(type='PenetrationMetric'),
    dict(
        type='PenetrationMetric',
        vertices_key='unrefined_vertices',
        prefix='penetration_unrefined'),
]
test_evaluator = val_evaluator
