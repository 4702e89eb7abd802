# Runtime settings shared by every mmhand2p config.
default_scope = 'mmhand2p'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, but atomic: a kill mid-save keeps the
    # previous checkpoint and last_checkpoint valid; refuses NaN weights
    checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # a NaN / Inf loss or gradient stops the run before the optimizer step,
    # naming the iteration, loss terms and samples ('skip': skip the step)
    finite_check=dict(type='FiniteLossHook', nonfinite='raise'),
    # draw every 50th val / test batch to work_dir/vis and the vis backends
    # (tools/test.py --show-dir DIR turns it on for one run):
    # visualization=dict(type='TwoHandVisualizationHook', interval=50),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
# add dict(type='TensorboardVisBackend') to vis_backends for TensorBoard
visualizer = dict(
    type='TwoHandLocalVisualizer',
    vis_backends=vis_backends,
    name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

# mmengine checkpoints load with torch.load(weights_only=True) under
# torch >= 2.6: importing mmhand2p.engine allow-lists what they contain.
custom_imports = dict(imports=['mmhand2p.engine'], allow_failed_imports=False)
