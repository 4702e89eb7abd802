# A2P Table 4 ablation: + keypoint prior.
_base_ = './a2p_res50_4xb12-6e_interhand26m-256x256.py'
model = dict(neck=dict(priors=('keypoint', )))
