# Mixing datasets as A2P trains on several (InterHand2.6M, Re:InterHand,
# COCO-WholeBody, FreiHAND, HO-3D in the paper; their loaders join this list
# as they are added). Shown here with InterHand2.6M + the synthetic set.
#
# Two ways: ConcatDataset alone samples in proportion to the sets' sizes;
# mmdet's MultiSourceSampler (below) fixes each set's share of every batch,
# here 2 InterHand2.6M : 1 synthetic, whatever the sizes. It is an infinite
# sampler: use it with an IterBasedTrainLoop.
_base_ = ['./interhand26m.py']

interhand_train = dict(
    type='InterHand26MDataset',
    data_root='data/interhand2.6m/',
    split='train',
    require_mano=True,
    mano_model_path='data/mano',
    pipeline={{_base_.train_pipeline}})
synthetic_train = dict(
    type='InterHand26MDataset',
    data_root='data/synthetic_interhand/',
    split='train',
    require_mano=True,
    mano_model_path=None,  # the set is rendered with the bundled model
    pipeline={{_base_.train_pipeline}})

train_dataloader = dict(
    batch_size=12,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(
        _delete_=True,
        type='mmdet.MultiSourceSampler',
        batch_size=12,
        source_ratio=[2, 1]),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[interhand_train, synthetic_train]))
