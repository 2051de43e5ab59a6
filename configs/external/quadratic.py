#!/usr/bin/env python3
"""An external trial: minimise (x - 2)^2 + (y + 1)^2 by gradient descent.

Skein runs it with its parameters in argv and SKEIN_PARAMS, and reads one JSON object per
stdout line as metrics. Standard library only."""
import json, os, sys

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
lr = float(args["--lr"])
steps = int(args["--steps"])
x, y = 0.0, 0.0
for step in range(1, steps + 1):
    x -= lr * 2 * (x - 2)
    y -= lr * 2 * (y + 1)
    loss = (x - 2) ** 2 + (y + 1) ** 2
    print(json.dumps({"step": step, "loss": loss}), flush=True)
print(f"done: trial {os.environ.get('SKEIN_TRIAL_ID')} params {os.environ.get('SKEIN_PARAMS')}", file=sys.stderr)
