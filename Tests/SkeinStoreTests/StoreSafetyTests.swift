import Foundation
import GRDB
import Testing
import SkeinTestSupport
@testable import SkeinStore

@Suite("Run store safety")
struct StoreSafetyTests {
    @Test("kill -9 during heavy ingestion: the database is sound and every reported batch is there")
    func crashDuringIngestion() async throws {
        let dir = try TemporaryDirectory.make(prefix: "crash")
        let path = "\(dir)/runs.sqlite"
        let writer = try ChildProcess("skein-testpeer", ["store-ingest", path])
        _ = try await writer.waitForLine(startingWith: "ready")
        // Let it commit a good number of batches, then kill it without warning.
        _ = try await writer.waitForLine(startingWith: "committed 100", timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(Int.random(in: 0..<150)))
        writer.kill(SIGKILL)
        _ = try await writer.waitForExit()
        let reported = writer.output.compactMap { $0.hasPrefix("committed ") ? Int($0.dropFirst(10)) : nil }
        let last = try #require(reported.max())

        let store = try SQLiteRunStore(path: path)
        #expect(try store.integrityCheck() == "ok")
        let sweep = try #require(try store.sweep(named: "ingest"))
        let trials = try store.trials(sweepID: sweep.id)
        for k in 0...last {
            let t = try #require(trials.first { $0.number == k }, "batch \(k) was reported committed but is missing")
            #expect(t.status == .completed)
            #expect(try store.series(trialID: t.id, name: "loss", steps: nil).count == 1000)
        }
    }

    @Test("a reader process querying the leaderboard while a writer ingests sees no errors")
    func readerNeverBlocked() async throws {
        let dir = try TemporaryDirectory.make(prefix: "rw")
        let path = "\(dir)/runs.sqlite"
        let writer = try ChildProcess("skein-testpeer", ["store-ingest", path])
        defer { writer.kill() }
        _ = try await writer.waitForLine(startingWith: "committed 1", timeout: .seconds(60))
        let reader = try ChildProcess("skein-testpeer", ["store-read", path, "3"])
        let status = try await reader.waitForExit(timeout: .seconds(60))
        let line = try #require(reader.output.first { $0.hasPrefix("reads") })
        #expect(status == 0, "\(line)")
        #expect(line.hasPrefix("reads ") && line.contains(" errors 0"))
        #expect(!line.contains("locked"))
        let reads = Int(line.split(separator: " ")[1]) ?? 0
        #expect(reads > 10)
        #expect(writer.isRunning)
    }

    @Test("a corrupt file is refused with a clear error and left untouched")
    func corruptFile() throws {
        let dir = try TemporaryDirectory.make(prefix: "corrupt")
        let path = "\(dir)/runs.sqlite"
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 131) })
        try garbage.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: StoreError.self) { try SQLiteRunStore(path: path) }
        guard case .corrupt(let p, _) = error else { Issue.record("expected .corrupt, got \(String(describing: error))"); return }
        #expect(p == path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)

        // A real store whose pages were damaged afterwards.
        let good = "\(dir)/damaged.sqlite"
        do {
            let store = try SQLiteRunStore(path: good)
            let s = try store.createSweep(newSweep())
            for i in 0..<200 { try completedTrial(store, s, i, Double(i)) }
        }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        if FileManager.default.fileExists(atPath: good + "-wal") {
            // Checkpoint the WAL into the main file first so the damage hits real pages.
            let q = try DatabaseQueue(path: good)
            try q.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try q.close()
            bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        }
        for i in stride(from: 4096 + 100, to: min(bytes.count, 4096 * 6), by: 7) { bytes[i] ^= 0xA5 }
        try bytes.write(to: URL(fileURLWithPath: good))
        let damaged = #expect(throws: StoreError.self) { try SQLiteRunStore(path: good) }
        if case .corrupt = damaged {} else { Issue.record("expected .corrupt, got \(String(describing: damaged))") }
    }

    @Test("a database from a newer schema version is refused, not migrated or truncated")
    func newerSchema() throws {
        let dir = try TemporaryDirectory.make(prefix: "newer")
        let path = "\(dir)/runs.sqlite"
        do {
            let store = try SQLiteRunStore(path: path)
            _ = try store.createSweep(newSweep("keep"))
        }
        // A future Skein added a migration this build does not know.
        let q = try DatabaseQueue(path: path)
        try q.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9-future')")
            try db.execute(sql: "CREATE TABLE future_things (x)")
        }
        try q.close()
        #expect(throws: StoreError.newerSchema(path: path, unknownMigrations: ["v9-future"])) { try SQLiteRunStore(path: path) }
        let check = try DatabaseQueue(path: path)
        #expect(try check.read { try String.fetchOne($0, sql: "SELECT name FROM sweeps") } == "keep")
    }

    @Test("a SQLite file that is not a run store is refused")
    func foreignDatabase() throws {
        let dir = try TemporaryDirectory.make(prefix: "foreign")
        let path = "\(dir)/other.sqlite"
        let q = try DatabaseQueue(path: path)
        try q.write { try $0.execute(sql: "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('mine')") }
        try q.close()
        let error = #expect(throws: StoreError.self) { try SQLiteRunStore(path: path) }
        if case .corrupt = error {} else { Issue.record("expected .corrupt, got \(String(describing: error))") }
    }

    @Test("migration from an empty database and from every earlier schema version gives the current schema, data kept")
    func migrations() throws {
        let dir = try TemporaryDirectory.make(prefix: "migrate")
        func schema(_ path: String) throws -> [String] {
            let q = try DatabaseQueue(path: path)
            defer { try? q.close() }
            return try q.read { try String.fetchAll($0, sql: "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name") }
        }
        let fresh = "\(dir)/fresh.sqlite"
        _ = try SQLiteRunStore(path: fresh)
        let current = try schema(fresh)
        #expect(current.contains { $0.contains("metric_chunks") })

        let ids = Migrations.migrator.migrations
        for (i, id) in ids.enumerated() {
            let path = "\(dir)/from-\(i).sqlite"
            let q = try DatabaseQueue(path: path)
            try Migrations.migrator.migrate(q, upTo: id)
            // Data written at that version.
            try q.write { db in
                try db.execute(sql: """
                    INSERT INTO sweeps (name, config_text, config_hash, seed, code_version, dataset_hash, objective_metric,
                                        objective_direction, status, created_at, updated_at)
                    VALUES ('old', 'x', 'h', 1, 'v', 'd', 'loss', 'minimize', 'running', 0, 0)
                    """)
            }
            try q.close()
            let store = try SQLiteRunStore(path: path)
            #expect(try store.sweep(named: "old") != nil)
            #expect(try schema(path) == current)
        }
    }
}
