"""The parts every trial is built from, whatever its task (harness.trial puts them together, and
harness.packed_trial for a pack):

    device.py      the Accelerator, the precision that runs, peak memory, device sync
    step.py        one optimization step on the device (Stepper)
    loop.py        ONE train_epoch and ONE evaluate, counting with the task's `counts`
    checkpoint.py  save and resume a trial between epochs (and mid-epoch, when a stop request came)
    stop.py        StopRequest, asked before every step, and TrialInterrupted
    progress.py    TrialProgress: closes each epoch (monitor, best weights, schedule, checkpoint, rows)
    pack.py        PackedModel: K models of one architecture stacked and run as one program
    pack_optim.py  PackOptimizer: each member's optimizer and schedule, stepped together
    pack_loop.py   train_pack_epoch and evaluate_pack: loop.py for K members at once

What a task decides (batches, model and loss, counts, scores, chance) lives in harness.tasks; the
engine never imports a task. Nothing is imported here.
"""
