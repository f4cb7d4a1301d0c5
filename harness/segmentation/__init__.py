"""Segmentation's own parts (`task: segmentation` in a sweep file: binary masks). The task itself, its
loop hooks and scores, is harness/tasks/segmentation.py; its batches are MaskBatches in harness/data/loader.py.

    metrics.py    IoU, Dice, pixel accuracy from pixel counts (pure functions)
    snapshots.py  PNG grids image | true mask | predicted mask, results/<sweep>/snapshots/<trial_id>/

Its model (unet_mobilenetv2, in harness/models/unet.py), mask losses (harness/losses.py) and datasets
(harness/data/segmentation.py) live in the one registry of each concept, tagged task="segmentation".
Nothing is imported here, so that the report can read snapshots without loading torch models.
"""
