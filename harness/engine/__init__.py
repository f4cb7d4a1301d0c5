"""The parts every trial is built from, whatever its task (harness.trial puts them together):

    device.py      the Accelerator, the precision that runs, peak memory, device sync
    step.py        one optimization step on the device (Stepper)
    loop.py        ONE train_epoch and ONE evaluate, counting with the task's `counts`
    checkpoint.py  save and resume a trial between epochs
    progress.py    TrialProgress: closes each epoch (monitor, best weights, schedule, checkpoint, rows)

What a task decides (batches, model and loss, counts, scores, chance) lives in harness.tasks; the
engine never imports a task. Nothing is imported here.
"""
