import Crypto
import Foundation
import GRDB
import SkeinFiles
import Synchronization

/// The run store on SQLite through GRDB: a `DatabasePool` in WAL mode for files (readers never
/// block the writer), a `DatabaseQueue` for in-memory stores (tests).
///
/// Durability: `synchronous = NORMAL` in WAL mode, so a committed transaction survives a crash
/// of the process (kill -9); an OS crash or power loss may lose the last transactions but never
/// corrupts the file.
public final class SQLiteRunStore: RunStore {
    public let path: String
    /// Where checkpoint files live: `<database>.checkpoints/` (a temporary directory in memory mode).
    public let checkpointDirectory: String
    let db: any DatabaseWriter
    private let now: @Sendable () -> Double
    private let metricNameIDs = Mutex<[String: Int64]>([:])

    /// Opens (creating if needed) the store at `path`, or an in-memory store for `":memory:"`.
    /// Refuses damaged files and databases from a newer schema with a clear error.
    public init(path: String, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) throws(StoreError) {
        self.path = path
        self.now = now
        checkpointDirectory = path == ":memory:"
            ? NSTemporaryDirectory() + "skein-checkpoints-\(UUID().uuidString)"
            : path + ".checkpoints"
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            if path == ":memory:" {
                db = try DatabaseQueue(configuration: config)
            } else {
                db = try DatabasePool(path: path, configuration: config)
            }
            try Self.migrate(db, path: path)
        } catch let e as StoreError {
            throw e
        } catch let e as DatabaseError where e.resultCode == .SQLITE_NOTADB || e.resultCode == .SQLITE_CORRUPT {
            throw .corrupt(path: path, detail: e.message ?? "\(e.resultCode)")
        } catch {
            throw .database("\(path): \(error)")
        }
    }

    static func migrate(_ db: any DatabaseWriter, path: String) throws {
        let migrator = Migrations.migrator
        try db.read { db in
            // Touch the header: a non-database file fails here with SQLITE_NOTADB.
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master")
            let check = try String.fetchOne(db, sql: "PRAGMA quick_check") ?? "?"
            if check != "ok" { throw StoreError.corrupt(path: path, detail: check) }
            if try db.tableExists("grdb_migrations") {
                let applied = try migrator.appliedIdentifiers(db)
                let unknown = applied.subtracting(migrator.migrations).sorted()
                if !unknown.isEmpty { throw StoreError.newerSchema(path: path, unknownMigrations: unknown) }
            } else if try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0 > 0 {
                throw StoreError.corrupt(path: path, detail: "a SQLite database, but not a Skein run store (no migration table)")
            }
        }
        try migrator.migrate(db)
    }

    /// Runs a write transaction, mapping errors once.
    private func write<T>(_ what: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        try access(what) { try db.write(body) }
    }

    /// Reads a snapshot, mapping errors once.
    private func read<T>(_ what: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        try access(what) { try db.read(body) }
    }

    private func access<T>(_ what: String, _ run: () throws -> T) throws(StoreError) -> T {
        do {
            return try run()
        } catch let e as StoreError {
            throw e
        } catch let e as DatabaseError {
            throw map(e, what)
        } catch {
            throw .database("\(what): \(error)")
        }
    }

    private func map(_ e: DatabaseError, _ what: String) -> StoreError {
        if e.resultCode == .SQLITE_CONSTRAINT { return .conflict("\(what): \(e.message ?? "constraint violated")") }
        if e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB { return .corrupt(path: path, detail: e.message ?? "") }
        return .database("\(what): \(e.message ?? "\(e.resultCode)") [\(e.sql ?? "")]")
    }

    // MARK: Sweeps

    public func createSweep(_ s: NewSweep) throws(StoreError) -> SweepRecord {
        let t = now()
        let id: Int64 = try write("create sweep \(s.name)") { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM sweeps WHERE name = ?", arguments: [s.name]) == true {
                throw StoreError.conflict("a sweep named '\(s.name)' already exists")
            }
            try db.execute(sql: """
                INSERT INTO sweeps (name, config_text, config_hash, seed, code_version, dataset_hash, objective_metric,
                                    objective_direction, status, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)
                """, arguments: [s.name, s.configText, s.configHash, Int64(bitPattern: s.seed), s.codeVersion, s.datasetHash,
                                 s.objectiveMetric, s.direction.rawValue, t, t])
            let id = db.lastInsertedRowID
            try Self.insertEvent(db, t, .sweepCreated, id, nil, nil, nil, "sweep \(s.name) created")
            return id
        }
        return try sweep(id: id)!
    }

    public func sweep(named name: String) throws(StoreError) -> SweepRecord? {
        try read("read sweep") { db in try Row.fetchOne(db, sql: "SELECT * FROM sweeps WHERE name = ?", arguments: [name]).map(Self.sweep) }
    }

    public func sweep(id: Int64) throws(StoreError) -> SweepRecord? {
        try read("read sweep") { db in try Row.fetchOne(db, sql: "SELECT * FROM sweeps WHERE id = ?", arguments: [id]).map(Self.sweep) }
    }

    public func sweeps() throws(StoreError) -> [SweepRecord] {
        try read("list sweeps") { db in try Row.fetchAll(db, sql: "SELECT * FROM sweeps ORDER BY id").map(Self.sweep) }
    }

    public func setSweepStatus(_ id: Int64, _ status: SweepStatus) throws(StoreError) {
        let t = now()
        try write("set sweep status") { db in
            try db.execute(sql: "UPDATE sweeps SET status = ?, updated_at = ?, finished_at = CASE WHEN ? = 'running' THEN NULL ELSE ? END WHERE id = ?",
                           arguments: [status.rawValue, t, status.rawValue, t, id])
            if db.changesCount == 0 { throw StoreError.notFound("sweep \(id)") }
            if status != .running { try Self.insertEvent(db, t, .sweepFinished, id, nil, nil, nil, "sweep \(status.rawValue)") }
        }
    }

    public func saveSearcherState(_ id: Int64, _ state: Data) throws(StoreError) {
        try write("save searcher state") { db in
            try db.execute(sql: "UPDATE sweeps SET searcher_state = ?, updated_at = ? WHERE id = ?", arguments: [state, now(), id])
            if db.changesCount == 0 { throw StoreError.notFound("sweep \(id)") }
        }
    }

    public func setMaxTrials(_ id: Int64, _ maxTrials: Int) throws(StoreError) {
        try write("set trial budget") { db in
            try db.execute(sql: "UPDATE sweeps SET max_trials_override = ?, updated_at = ? WHERE id = ?", arguments: [maxTrials, now(), id])
            if db.changesCount == 0 { throw StoreError.notFound("sweep \(id)") }
        }
    }

    static func sweep(_ r: Row) -> SweepRecord {
        SweepRecord(id: r["id"], name: r["name"], configText: r["config_text"], configHash: r["config_hash"],
                    seed: UInt64(bitPattern: r["seed"]), codeVersion: r["code_version"], datasetHash: r["dataset_hash"],
                    objectiveMetric: r["objective_metric"], direction: ObjectiveDirection(rawValue: r["objective_direction"]) ?? .minimize,
                    status: SweepStatus(rawValue: r["status"]) ?? .running, createdAt: r["created_at"], updatedAt: r["updated_at"],
                    finishedAt: r["finished_at"], searcherState: r["searcher_state"], maxTrialsOverride: r["max_trials_override"])
    }

    // MARK: Trials

    public func createTrial(_ t: NewTrial) throws(StoreError) -> TrialRecord {
        let time = now()
        return try write("create trial \(t.number)") { db in
            let id = try Self.insertTrial(db, t, time)
            return try Row.fetchOne(db, sql: "SELECT * FROM trials WHERE id = ?", arguments: [id]).map(Self.trial)!
        }
    }

    public func createAndStartTrials(_ trials: [NewTrial], worker: String, leaseExpiresAt: Double) throws(StoreError) -> [TrialRecord] {
        let time = now()
        return try write("create and start \(trials.count) trials") { db in
            try trials.map { t in
                let id = try Self.insertTrial(db, t, time)
                _ = try Self.start(db, trialID: id, worker: worker, leaseExpiresAt: leaseExpiresAt, now: time)
                // Everything is known: no need to read the row back.
                return TrialRecord(id: id, sweepID: t.sweepID, number: t.number, parametersJSON: t.parametersJSON, status: .running,
                                   attempt: 1, worker: worker, leaseExpiresAt: leaseExpiresAt, seed: t.seed, error: nil, logTail: nil,
                                   createdAt: time, startedAt: time, finishedAt: nil, objective: nil)
            }
        }
    }

    static func insertTrial(_ db: Database, _ t: NewTrial, _ time: Double) throws -> Int64 {
        if try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM trials WHERE sweep_id = ? AND number = ?"), arguments: [t.sweepID, t.number]) == true {
            throw StoreError.conflict("sweep \(t.sweepID) already has trial number \(t.number)")
        }
        try db.cachedStatement(sql: """
            INSERT INTO trials (sweep_id, number, parameters, status, seed, created_at) VALUES (?, ?, ?, 'queued', ?, ?)
            """).execute(arguments: [t.sweepID, t.number, t.parametersJSON, Int64(bitPattern: t.seed), time])
        return db.lastInsertedRowID
    }

    public func trial(id: Int64) throws(StoreError) -> TrialRecord? {
        try read("read trial") { db in try Row.fetchOne(db, sql: "SELECT * FROM trials WHERE id = ?", arguments: [id]).map(Self.trial) }
    }

    public func trials(sweepID: Int64) throws(StoreError) -> [TrialRecord] {
        try read("list trials") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM trials WHERE sweep_id = ? ORDER BY number", arguments: [sweepID]).map(Self.trial)
        }
    }

    public func startAttempt(trialID: Int64, worker: String, leaseExpiresAt: Double) throws(StoreError) -> Int {
        let t = now()
        return try write("start attempt of trial \(trialID)") { db in
            try Self.start(db, trialID: trialID, worker: worker, leaseExpiresAt: leaseExpiresAt, now: t)
        }
    }

    static func start(_ db: Database, trialID: Int64, worker: String, leaseExpiresAt: Double, now t: Double) throws -> Int {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT status, attempt, sweep_id FROM trials WHERE id = ?"), arguments: [trialID]) else {
            throw StoreError.notFound("trial \(trialID)")
        }
        let status = TrialStatus(rawValue: row[0]) ?? .queued
        let current: Int = row[1]
        if status == .running { throw StoreError.conflict("trial \(trialID) is already running (attempt \(current))") }
        if status.isFinished { throw StoreError.immutable(trialID: trialID, status: status) }
        let attempt = current + 1
        try db.cachedStatement(sql: """
            UPDATE trials SET status = 'running', attempt = ?, worker = ?, lease_expires_at = ?,
                              started_at = COALESCE(started_at, ?) WHERE id = ?
            """).execute(arguments: [attempt, worker, leaseExpiresAt, t, trialID])
        try insertEvent(db, t, .leaseGranted, row[2], trialID, attempt, worker, "lease granted")
        return attempt
    }

    public func renewLease(trialID: Int64, attempt: Int, until: Double) throws(StoreError) -> Bool {
        try write("renew lease") { db in
            try db.execute(sql: "UPDATE trials SET lease_expires_at = ? WHERE id = ? AND attempt = ? AND status = 'running'",
                           arguments: [until, trialID, attempt])
            return db.changesCount == 1
        }
    }

    public func finishAttempt(trialID: Int64, attempt: Int, outcome: AttemptOutcome, metrics: [MetricRow]) throws(StoreError) -> Bool {
        try finishAttempts([AttemptEnd(trialID: trialID, attempt: attempt, outcome: outcome, metrics: metrics)])[0]
    }

    public func finishAttempts(_ items: [AttemptEnd]) throws(StoreError) -> [Bool] {
        guard !items.isEmpty else { return [] }
        let t = now()
        return try write("finish \(items.count) attempts") { db in
            try items.map { item in try self.finish(db, item, now: t) }
        }
    }

    private func finish(_ db: Database, _ item: AttemptEnd, now t: Double) throws -> Bool {
        let (trialID, attempt, outcome) = (item.trialID, item.attempt, item.outcome)
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT status, attempt, sweep_id, worker FROM trials WHERE id = ?"),
                                         arguments: [trialID]) else {
            throw StoreError.notFound("trial \(trialID)")
        }
        let sweepID: Int64 = row[2]
        let status: String = row[0]
        let current: Int = row[1]
        guard status == "running", current == attempt else {
            try Self.insertEvent(db, t, .resultRefused, sweepID, trialID, attempt, nil,
                                 "result for attempt \(attempt) refused: trial is \(status) at attempt \(current)")
            return false
        }
        try insertMetrics(item.metrics, db)
        let objective = outcome.objective.flatMap { $0.isFinite ? $0 : nil }
        try db.cachedStatement(sql: """
            UPDATE trials SET status = ?, objective = ?, error = ?, log_tail = ?, finished_at = ?, lease_expires_at = NULL
            WHERE id = ?
            """).execute(arguments: [outcome.status.rawValue, objective, outcome.error, outcome.logTail, t, trialID])
        try Self.insertEvent(db, t, outcome.status == .failed ? .trialFailed : .trialFinished, sweepID, trialID, attempt,
                             row[3], "attempt \(attempt) \(outcome.status.rawValue)" + (outcome.error.map { ": \($0)" } ?? ""))
        return true
    }

    public func revokeLease(trialID: Int64, attempt: Int, reason: String) throws(StoreError) -> Bool {
        let t = now()
        return try write("revoke lease of trial \(trialID)") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT status, attempt, sweep_id, worker FROM trials WHERE id = ?", arguments: [trialID]) else {
                throw StoreError.notFound("trial \(trialID)")
            }
            guard row["status"] == "running", row["attempt"] == attempt else { return false }
            try db.execute(sql: "UPDATE trials SET status = 'queued', worker = NULL, lease_expires_at = NULL WHERE id = ?", arguments: [trialID])
            try Self.insertEvent(db, t, .leaseRevoked, row["sweep_id"], trialID, attempt, row["worker"], reason)
            return true
        }
    }

    public func requeueFailed(trialID: Int64) throws(StoreError) {
        try write("requeue trial \(trialID)") { db in
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM trials WHERE id = ?", arguments: [trialID]) else {
                throw StoreError.notFound("trial \(trialID)")
            }
            guard status == "failed" else { throw StoreError.conflict("trial \(trialID) is \(status), only failed trials can be retried") }
            try db.execute(sql: "UPDATE trials SET status = 'queued', error = NULL, finished_at = NULL WHERE id = ?", arguments: [trialID])
        }
    }

    public func recordAttemptError(trialID: Int64, error: String, logTail: String) throws(StoreError) {
        try write("record attempt error") { db in
            try db.execute(sql: "UPDATE trials SET error = ?, log_tail = ? WHERE id = ? AND status = 'queued'", arguments: [error, logTail, trialID])
        }
    }

    public func cancelQueued(trialID: Int64, reason: String) throws(StoreError) {
        let t = now()
        try write("cancel trial \(trialID)") { db in
            try db.execute(sql: "UPDATE trials SET status = 'cancelled', error = ?, finished_at = ? WHERE id = ? AND status = 'queued'",
                           arguments: [reason, t, trialID])
            if db.changesCount == 0 { throw StoreError.conflict("trial \(trialID) is not queued") }
        }
    }

    static func trial(_ r: Row) -> TrialRecord {
        TrialRecord(id: r["id"], sweepID: r["sweep_id"], number: r["number"], parametersJSON: r["parameters"],
                    status: TrialStatus(rawValue: r["status"]) ?? .queued, attempt: r["attempt"], worker: r["worker"],
                    leaseExpiresAt: r["lease_expires_at"], seed: UInt64(bitPattern: r["seed"]), error: r["error"], logTail: r["log_tail"],
                    createdAt: r["created_at"], startedAt: r["started_at"], finishedAt: r["finished_at"], objective: r["objective"])
    }

    // MARK: Metrics

    /// Points per stored chunk at most; larger groups are split so a row stays small.
    static let chunkLimit = 8192

    public func appendMetrics(_ points: [MetricRow]) throws(StoreError) {
        guard !points.isEmpty else { return }
        try write("append \(points.count) metric points") { db in try self.insertMetrics(points, db) }
    }

    func insertMetrics(_ points: [MetricRow], _ db: Database) throws {
        guard !points.isEmpty else { return }
        // Group by (trial, attempt, metric), keeping arrival order inside each group.
        struct Key: Hashable { let trial: Int64; let attempt: Int; let name: String }
        var groups: [Key: [Int]] = [:]
        var order: [Key] = []
        for (i, p) in points.enumerated() {
            let k = Key(trial: p.trialID, attempt: p.attempt, name: p.name)
            if groups[k] == nil { order.append(k); groups[k] = [] }
            groups[k]!.append(i)
        }
        do {
            let insert = try db.cachedStatement(sql: """
                INSERT INTO metric_chunks (trial_id, attempt, name_id, first_step, last_step, count, steps, vals, times)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for key in order {
                let nameID = try self.nameID(key.name, db)
                let indices = groups[key]!
                var start = 0
                while start < indices.count {
                    let slice = indices[start..<min(start + Self.chunkLimit, indices.count)]
                    var steps = Data(count: slice.count * 8), vals = Data(count: slice.count * 8), times = Data(count: slice.count * 8)
                    var lo = Int64.max, hi = Int64.min
                    steps.withUnsafeMutableBytes { s in
                        vals.withUnsafeMutableBytes { v in
                            times.withUnsafeMutableBytes { t in
                                for (j, i) in slice.enumerated() {
                                    let p = points[i]
                                    s.storeBytes(of: p.step.littleEndian, toByteOffset: j * 8, as: Int64.self)
                                    v.storeBytes(of: p.value.bitPattern.littleEndian, toByteOffset: j * 8, as: UInt64.self)
                                    t.storeBytes(of: p.time.bitPattern.littleEndian, toByteOffset: j * 8, as: UInt64.self)
                                    lo = min(lo, p.step); hi = max(hi, p.step)
                                }
                            }
                        }
                    }
                    try insert.execute(arguments: [key.trial, key.attempt, nameID, lo, hi, slice.count, steps, vals, times])
                    start += slice.count
                }
            }
        }
    }

    private func nameID(_ name: String, _ db: Database) throws -> Int64 {
        if let id = metricNameIDs.withLock({ $0[name] }) { return id }
        try db.execute(sql: "INSERT OR IGNORE INTO metric_names (name) VALUES (?)", arguments: [name])
        let id = try Int64.fetchOne(db, sql: "SELECT id FROM metric_names WHERE name = ?", arguments: [name])!
        metricNameIDs.withLock { $0[name] = id }
        return id
    }

    public func series(trialID: Int64, name: String, steps: ClosedRange<Int64>?) throws(StoreError) -> [SeriesPoint] {
        try read("read series \(name) of trial \(trialID)") { db in
            guard let nameID = try Int64.fetchOne(db, sql: "SELECT id FROM metric_names WHERE name = ?", arguments: [name]) else { return [] }
            let lo = steps?.lowerBound ?? .min, hi = steps?.upperBound ?? .max
            let rows = try Row.fetchCursor(db, sql: """
                SELECT attempt, count, steps, vals, times FROM metric_chunks
                WHERE trial_id = ? AND name_id = ? AND first_step <= ? AND last_step >= ?
                ORDER BY attempt, id
                """, arguments: [trialID, nameID, hi, lo])
            // Later attempts (and later chunks) overwrite earlier values of the same step.
            var byStep: [Int64: SeriesPoint] = [:]
            while let r = try rows.next() {
                let count: Int = r["count"]
                let s: Data = r["steps"], v: Data = r["vals"], t: Data = r["times"]
                guard s.count == count * 8, v.count == count * 8, t.count == count * 8 else {
                    throw StoreError.corrupt(path: self.path, detail: "metric chunk of trial \(trialID) has inconsistent lengths")
                }
                s.withUnsafeBytes { sp in
                    v.withUnsafeBytes { vp in
                        t.withUnsafeBytes { tp in
                            for j in 0..<count {
                                let step = Int64(littleEndian: sp.loadUnaligned(fromByteOffset: j * 8, as: Int64.self))
                                guard step >= lo && step <= hi else { continue }
                                byStep[step] = SeriesPoint(
                                    step: step,
                                    value: Double(bitPattern: UInt64(littleEndian: vp.loadUnaligned(fromByteOffset: j * 8, as: UInt64.self))),
                                    time: Double(bitPattern: UInt64(littleEndian: tp.loadUnaligned(fromByteOffset: j * 8, as: UInt64.self))))
                            }
                        }
                    }
                }
            }
            return byStep.values.sorted { $0.step < $1.step }
        }
    }

    public func metricNames(trialID: Int64) throws(StoreError) -> [String] {
        try read("metric names") { db in
            try String.fetchAll(db, sql: """
                SELECT DISTINCT n.name FROM metric_chunks c JOIN metric_names n ON n.id = c.name_id WHERE c.trial_id = ? ORDER BY n.name
                """, arguments: [trialID])
        }
    }

    // MARK: Queries

    public func leaderboard(sweepID: Int64, top: Int) throws(StoreError) -> [LeaderboardEntry] {
        try read("leaderboard") { db in
            guard let dir = try String.fetchOne(db, sql: "SELECT objective_direction FROM sweeps WHERE id = ?", arguments: [sweepID]) else {
                throw StoreError.notFound("sweep \(sweepID)")
            }
            let order = dir == "maximize" ? "DESC" : "ASC"
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM trials INDEXED BY trials_by_objective
                WHERE sweep_id = ? AND status = 'completed' AND objective IS NOT NULL
                ORDER BY objective \(order), number ASC LIMIT ?
                """, arguments: [sweepID, top])
            return rows.enumerated().map { LeaderboardEntry(rank: $0.offset + 1, trial: Self.trial($0.element)) }
        }
    }

    public func summary(sweepID: Int64) throws(StoreError) -> SweepSummary {
        guard let s = try sweep(id: sweepID) else { throw .notFound("sweep \(sweepID)") }
        let counts: [TrialStatus: Int] = try read("summary") { db in
            var c: [TrialStatus: Int] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT status, count(*) AS n FROM trials WHERE sweep_id = ? GROUP BY status", arguments: [sweepID]) {
                if let st = TrialStatus(rawValue: r["status"]) { c[st] = r["n"] }
            }
            return c
        }
        return SweepSummary(sweep: s, counts: counts, best: try leaderboard(sweepID: sweepID, top: 1).first?.trial)
    }

    // MARK: Checkpoints, workers, events

    public func recordCheckpoint(trialID: Int64, attempt: Int, step: Int64, contentHash: String, size: Int64, path: String) throws(StoreError) {
        try write("record checkpoint") { db in
            try db.execute(sql: """
                INSERT INTO checkpoints (trial_id, attempt, step, content_hash, size, path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [trialID, attempt, step, contentHash, size, path, now()])
        }
    }

    public func saveCheckpoint(trialID: Int64, attempt: Int, step: Int64, bytes: [UInt8]) throws(StoreError) -> CheckpointRecord {
        let hash = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        let file = "\(checkpointDirectory)/\(hash).ckpt"
        if !FileManager.default.fileExists(atPath: file) {
            do {
                try FileManager.default.createDirectory(atPath: checkpointDirectory, withIntermediateDirectories: true)
            } catch {
                throw .database("cannot create \(checkpointDirectory): \(error)")
            }
            do {
                try DurableFile.write(bytes, to: file)
            } catch {
                throw .database("cannot write checkpoint \(error)")
            }
        }
        try recordCheckpoint(trialID: trialID, attempt: attempt, step: step, contentHash: hash, size: Int64(bytes.count), path: file)
        return try latestCheckpoint(trialID: trialID)!
    }

    public func checkpointBytes(hash: String) throws(StoreError) -> [UInt8]? {
        // Only hex names: a hash from the wire must never become a path elsewhere.
        guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit }) else { return nil }
        return FileManager.default.contents(atPath: "\(checkpointDirectory)/\(hash).ckpt").map { [UInt8]($0) }
    }

    public func latestCheckpoint(trialID: Int64) throws(StoreError) -> CheckpointRecord? {
        try read("latest checkpoint") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM checkpoints WHERE trial_id = ? ORDER BY step DESC, id DESC LIMIT 1", arguments: [trialID]).map { r in
                CheckpointRecord(id: r["id"], trialID: r["trial_id"], attempt: r["attempt"], step: r["step"], contentHash: r["content_hash"],
                                 size: r["size"], path: r["path"], createdAt: r["created_at"])
            }
        }
    }

    public func upsertWorker(_ w: WorkerRecord) throws(StoreError) {
        try write("upsert worker") { db in
            try db.execute(sql: """
                INSERT INTO workers (id, host, slots, joined_at, last_seen, state) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET host = excluded.host, slots = excluded.slots, last_seen = excluded.last_seen, state = excluded.state
                """, arguments: [w.id, w.host, w.slots, w.joinedAt, w.lastSeen, w.state.rawValue])
        }
    }

    public func workers() throws(StoreError) -> [WorkerRecord] {
        try read("list workers") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM workers ORDER BY joined_at, id").map { r in
                WorkerRecord(id: r["id"], host: r["host"], slots: r["slots"], joinedAt: r["joined_at"], lastSeen: r["last_seen"],
                             state: WorkerRecord.State(rawValue: r["state"]) ?? .dead)
            }
        }
    }

    public func appendEvent(_ kind: StoreEvent.Kind, sweepID: Int64?, trialID: Int64?, attempt: Int?, workerID: String?, detail: String) throws(StoreError) {
        let t = now()
        try write("append event") { db in try Self.insertEvent(db, t, kind, sweepID, trialID, attempt, workerID, detail) }
    }

    static func insertEvent(_ db: Database, _ t: Double, _ kind: StoreEvent.Kind, _ sweepID: Int64?, _ trialID: Int64?, _ attempt: Int?,
                            _ worker: String?, _ detail: String) throws {
        try db.cachedStatement(sql: "INSERT INTO events (time, kind, sweep_id, trial_id, attempt, worker_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .execute(arguments: [t, kind.rawValue, sweepID, trialID, attempt, worker, detail])
    }

    public func events(sweepID: Int64?, limit: Int) throws(StoreError) -> [StoreEvent] {
        try read("events") { db in
            let rows = sweepID == nil
                ? try Row.fetchAll(db, sql: "SELECT * FROM events ORDER BY id DESC LIMIT ?", arguments: [limit])
                : try Row.fetchAll(db, sql: "SELECT * FROM events WHERE sweep_id = ? ORDER BY id DESC LIMIT ?", arguments: [sweepID, limit])
            return rows.reversed().map { r in
                StoreEvent(id: r["id"], time: r["time"], kind: StoreEvent.Kind(rawValue: r["kind"]) ?? .resumed, sweepID: r["sweep_id"],
                           trialID: r["trial_id"], attempt: r["attempt"], workerID: r["worker_id"], detail: r["detail"])
            }
        }
    }

    /// `PRAGMA integrity_check` ("ok" when sound).
    public func integrityCheck() throws(StoreError) -> String {
        try read("integrity check") { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }
}
