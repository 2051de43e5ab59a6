// Run-store benchmark.
//   store-bench ingest DIR POINTS BATCH     metric points/s into SQLiteRunStore (file, WAL)
//   store-bench leaderboard DIR             top-10 latency at 1,000 and 100,000 completed trials
// The naive peer (one row per point through Python's sqlite3) is benchmarks/python/naive_sqlite.py,
// run by scripts/bench-store in the same run with the same batch shape.
import Foundation
import GRDB
import SkeinStore

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

let args = CommandLine.arguments
guard args.count >= 3 else { print("usage: store-bench ingest DIR POINTS BATCH | leaderboard DIR"); exit(2) }
let dir = args[2]
try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

switch args[1] {
case "ingest":
    let total = Int(args[3])!, batch = Int(args[4])!
    let path = "\(dir)/ingest.sqlite"
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    let store = try SQLiteRunStore(path: path)
    let sweep = try store.createSweep(NewSweep(name: "bench", configText: "", configHash: "", seed: 0, codeVersion: "",
                                               datasetHash: "", objectiveMetric: "loss", direction: .minimize))
    // 10 trials reporting 5 metrics each: a batch holds batch/50 steps of every series.
    var trials: [Int64] = []
    for i in 0..<10 {
        let t = try store.createTrial(NewTrial(sweepID: sweep.id, number: i, parametersJSON: "{}", seed: 0))
        _ = try store.startAttempt(trialID: t.id, worker: "w", leaseExpiresAt: 0)
        trials.append(t.id)
    }
    let names = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    let stepsPerBatch = batch / (trials.count * names.count)
    var step: Int64 = 0
    var written = 0
    var batchBuffer: [MetricRow] = []
    batchBuffer.reserveCapacity(batch)
    let clock = ContinuousClock()
    var elapsed = Duration.zero
    while written < total {
        batchBuffer.removeAll(keepingCapacity: true)
        for s in 0..<stepsPerBatch {
            for t in trials {
                for n in names {
                    batchBuffer.append(MetricRow(trialID: t, attempt: 1, name: n, step: step + Int64(s), value: Double(s) * 0.001, time: 1.7e9))
                }
            }
        }
        step += Int64(stepsPerBatch)
        // Time only the store call: building the batch is the caller's work.
        let t0 = clock.now
        try store.appendMetrics(batchBuffer)
        elapsed += clock.now - t0
        written += batchBuffer.count
    }
    let check = try store.series(trialID: trials[0], name: "loss", steps: nil).count
    print(String(format: "points=%d batch=%d seconds=%.3f points_per_s=%.0f (series check: %d points per series)",
                 written, batch, seconds(elapsed), Double(written) / seconds(elapsed), check))

case "leaderboard":
    for n in [1_000, 100_000] {
        let path = "\(dir)/lb-\(n).sqlite"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        var store: SQLiteRunStore? = try SQLiteRunStore(path: path)
        let sweep = try store!.createSweep(NewSweep(name: "bench", configText: "", configHash: "", seed: 0, codeVersion: "",
                                                    datasetHash: "", objectiveMetric: "val_loss", direction: .minimize))
        store = nil
        // Bulk-load n completed trials (and n/10 running ones) directly: this measures the query, not the loading.
        let q = try DatabaseQueue(path: path)
        try q.write { db in
            let stmt = try db.makeStatement(sql: """
                INSERT INTO trials (sweep_id, number, parameters, status, attempt, seed, created_at, objective)
                VALUES (?, ?, ?, ?, 1, 0, 0, ?)
                """)
            var rng = SystemRandomNumberGenerator()
            for i in 0..<(n + n / 10) {
                let done = i < n
                try stmt.execute(arguments: [sweep.id, i, "{\"lr\":\(Double.random(in: 1e-4...1e-1, using: &rng)),\"hidden\":128}",
                                             done ? "completed" : "running", done ? Double.random(in: 0...1, using: &rng) : nil])
            }
        }
        try q.close()
        let s = try SQLiteRunStore(path: path)
        let clock = ContinuousClock()
        var times: [Double] = []
        for _ in 0..<20 { _ = try s.leaderboard(sweepID: sweep.id, top: 10) } // warm the cache
        for _ in 0..<200 {
            let t0 = clock.now
            let top = try s.leaderboard(sweepID: sweep.id, top: 10)
            times.append(seconds(clock.now - t0) * 1000)
            precondition(top.count == 10)
        }
        times.sort()
        print(String(format: "trials=%d top10_median_ms=%.3f top10_p99_ms=%.3f", n, times[100], times[197]))
    }
default:
    print("unknown mode")
    exit(2)
}
