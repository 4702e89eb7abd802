# The embedded default without the stage-2 refiner (docs/model_zoo.md): the
# same checkpoint, demo/resources/checkpoints/hand2p_default_synthetic.pth.
_base_ = ['./hand2p_default_synthetic.py']

model = dict(refine=False)
test_evaluator = [
    dict(type='TwoHandMetric', protocol='a2p'),
    dict(type='PenetrationMetric'),
]
val_evaluator = test_evaluator
