# The paper's starred variant: the frozen teachers run at inference too and
# feed F_a = Proj((F_k + F_s + F_d) / 3) directly (no FAE, no distillation).
_base_ = './a2p_res50_4xb12-6e_interhand26m-256x256.py'
model = dict(neck=dict(prior_source='teacher', fae=None))
