"""Segmentation as a second task type (`task: segmentation` in a sweep file): binary masks.

    models.py     SEG_MODELS registry: unet_mobilenetv2 (torchvision MobileNetV2 encoder, U-Net decoder)
    losses.py     SEG_LOSSES registry: bce, dice, bce_dice
    metrics.py    IoU, Dice, pixel accuracy from pixel counts (pure functions)
    batches.py    MaskBatches: images and uint8 masks on the device, joint horizontal flip
    snapshots.py  PNG grids image | true mask | predicted mask, results/<sweep>/snapshots/<trial_id>/
    train.py      train_segmentation: the trial loop (harness.trial dispatches to it)

Datasets (synthetic_shapes, segmentation_folder) live with the others in harness/data/segmentation.py.
Nothing is imported here, so that the report can read snapshots without loading torch models.
"""
