"""Helpers for external Skein trials (standard library only).

Skein starts an external trial as a command with its parameters in the environment and reads
metrics from stdout, one JSON object per line. These helpers do that plumbing:

    import skein_trial as skein
    p = skein.params()                       # {"lr": 0.01, ...}
    start = 0
    if skein.resume_path():                  # resuming after a lost worker: load your state
        start = load(skein.resume_path())
    for step in range(start, 100):
        loss = train_one_step(p["lr"])
        skein.report(step, loss=loss)        # {"step": step, "loss": loss} on stdout
        if step % 10 == 0:
            save(os.path.join(skein.checkpoint_dir(), "state.pt"))

A checkpoint directory is per trial and per worker (SKEIN_CHECKPOINT_DIR); a trial resumes from
SKEIN_RESUME_FROM when Skein gives one (put the checkpoint directory on shared storage for a
trial to resume on another host).
"""
import json
import os
import sys

__all__ = ["params", "report", "checkpoint_dir", "resume_path", "trial_id", "trial_number", "attempt", "seed"]


def params():
    """The trial's parameters (a dict), from SKEIN_PARAMS."""
    return json.loads(os.environ.get("SKEIN_PARAMS", "{}"))


def report(step, **metrics):
    """Reports metrics at an integer step: one JSON line on stdout, flushed at once.
    Only numbers are metrics; the sweep's objective is the last reported value of its metric."""
    line = {"step": int(step)}
    for name, value in metrics.items():
        if name == "step":
            raise ValueError("'step' is reserved")
        line[name] = float(value)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def checkpoint_dir():
    """A directory for this trial's checkpoints (created by Skein)."""
    path = os.environ.get("SKEIN_CHECKPOINT_DIR") or os.path.join(os.getcwd(), "checkpoints")
    os.makedirs(path, exist_ok=True)
    return path


def resume_path():
    """The checkpoint to resume from, or None when the trial starts fresh."""
    return os.environ.get("SKEIN_RESUME_FROM") or None


def trial_id():
    return int(os.environ["SKEIN_TRIAL_ID"]) if "SKEIN_TRIAL_ID" in os.environ else None


def trial_number():
    return int(os.environ["SKEIN_TRIAL_NUMBER"]) if "SKEIN_TRIAL_NUMBER" in os.environ else None


def attempt():
    return int(os.environ.get("SKEIN_ATTEMPT", "1"))


def seed():
    """The trial's seed (derived from the sweep seed and the trial number)."""
    return int(os.environ.get("SKEIN_SEED", "0"))
