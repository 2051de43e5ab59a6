"""End-to-end trial throughput of `skein sweep launch --local 2` with trivial trials, and the
time from launching the command to the first stored result. Reads the run store afterwards.
Usage: sweep_throughput.py SKEIN_BINARY"""
import os, sqlite3, subprocess, sys, tempfile, time

skein = sys.argv[1]
cases = [
    ("noop", 1, 20000), ("noop", 4, 20000), ("noop", 16, 20000),
    ("true", 4, 1000), ("true", 16, 1000),
]
print(f"{'trial':<6} {'slots/worker':>12} {'trials':>7} {'trials/s':>9} {'first result (s after launch)':>30}")
for kind, slots, n in cases:
    d = tempfile.mkdtemp(prefix="skein-bench-")
    cfg = os.path.join(d, "sweep.yaml")
    trial = "{kind: noop}" if kind == "noop" else "{kind: command, command: [true]}"
    with open(cfg, "w") as f:
        f.write(f"""name: bench
seed: 1
objective: {{metric: objective, direction: maximize}}
budget: {{max_trials: {n}}}
trial: {trial}
search:
  method: random
  parameters:
    x: {{uniform: [0, 1]}}
""")
    start = time.time()
    subprocess.run([skein, "sweep", "launch", "--local", "2", "--slots", str(slots), cfg, "--run-dir", os.path.join(d, "run")],
                   check=True, stdout=subprocess.DEVNULL)
    db = sqlite3.connect(os.path.join(d, "run", "skein.sqlite"))
    count, first_start, last_finish, first_finish = db.execute(
        "SELECT count(*), min(started_at), max(finished_at), min(finished_at) FROM trials WHERE status = 'completed'").fetchone()
    print(f"{kind:<6} {slots:>12} {count:>7} {count / (last_finish - first_start):>9.0f} {first_finish - start:>30.3f}")
