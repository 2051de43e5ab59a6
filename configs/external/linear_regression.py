#!/usr/bin/env python3
"""An external trial using python/skein_trial.py: fit y = 3x - 1 by SGD, with checkpoints."""
import json, os, random, sys
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import skein_trial as skein

p = skein.params()
rng = random.Random(skein.seed())
data = [(x, 3 * x - 1 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(256))]
w, b, start = 0.0, 0.0, 0
state_file = os.path.join(skein.checkpoint_dir(), "state.json")
if skein.resume_path() and os.path.exists(skein.resume_path()):
    with open(skein.resume_path()) as f:
        w, b, start = (lambda s: (s["w"], s["b"], s["step"]))(json.load(f))
for step in range(start, int(p["steps"])):
    gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
    gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
    w, b = w - p["lr"] * gw, b - p["lr"] * gb
    loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
    skein.report(step + 1, loss=loss, w=w, b=b)
    if (step + 1) % 20 == 0:
        with open(state_file + ".tmp", "w") as f:
            json.dump({"w": w, "b": b, "step": step + 1}, f)
        os.replace(state_file + ".tmp", state_file)
