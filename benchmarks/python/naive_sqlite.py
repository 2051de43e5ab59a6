"""The naive ceiling for metric ingestion: one SQLite row per point through Python's sqlite3,
same batch shape, same settings as the run store (WAL, synchronous=NORMAL, one transaction per batch).
Usage: naive_sqlite.py DIR POINTS BATCH"""
import os, sys, time, sqlite3

d, total, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = os.path.join(d, "naive.sqlite")
for s in ("", "-wal", "-shm"):
    if os.path.exists(path + s):
        os.remove(path + s)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE metrics (trial_id INTEGER, attempt INTEGER, name TEXT, step INTEGER, value REAL, time REAL)")
db.execute("CREATE INDEX metrics_by_series ON metrics (trial_id, name, step)")
names = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
steps_per_batch = batch // 50
written, step, elapsed = 0, 0, 0.0
while written < total:
    rows = [(t, 1, n, step + s, s * 0.001, 1.7e9) for s in range(steps_per_batch) for t in range(10) for n in names]
    step += steps_per_batch
    t0 = time.perf_counter()
    db.execute("BEGIN")
    db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    elapsed += time.perf_counter() - t0
    written += len(rows)
print(f"points={written} batch={batch} seconds={elapsed:.3f} points_per_s={written / elapsed:.0f}")
