import Foundation
import Testing
import SkeinTestSupport
@testable import SkeinStore

/// The run-store contract. Every backend must pass it: add a case to `Backend` for a new one.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqliteMemory = "SQLite in memory"
    case sqliteFile = "SQLite file (WAL)"
    var testDescription: String { rawValue }

    func make(now: @escaping @Sendable () -> Double = { 1000 }) throws -> any RunStore {
        switch self {
        case .sqliteMemory: return try SQLiteRunStore(path: ":memory:", now: now)
        case .sqliteFile:
            let dir = try TemporaryDirectory.make(prefix: "store")
            return try SQLiteRunStore(path: "\(dir)/runs.sqlite", now: now)
        }
    }
}

func newSweep(_ name: String = "s", direction: ObjectiveDirection = .minimize) -> NewSweep {
    NewSweep(name: name, configText: "name: \(name)\n", configHash: "abc", seed: 42, codeVersion: "v0", datasetHash: "d0",
             objectiveMetric: "val_loss", direction: direction)
}

/// Creates, starts and completes a trial with an objective.
@discardableResult
func completedTrial(_ store: any RunStore, _ sweep: SweepRecord, _ number: Int, _ objective: Double) throws -> TrialRecord {
    let t = try store.createTrial(NewTrial(sweepID: sweep.id, number: number, parametersJSON: "{\"lr\":\(objective)}", seed: UInt64(number)))
    let a = try store.startAttempt(trialID: t.id, worker: "w1", leaseExpiresAt: 2000)
    #expect(try store.finishAttempt(trialID: t.id, attempt: a, outcome: AttemptOutcome(status: .completed, objective: objective), metrics: []))
    return try store.trial(id: t.id)!
}

@Suite("Run store contract")
struct RunStoreContract {
    @Test("sweeps: create, read back everything, unique names, status, searcher state", arguments: Backend.allCases)
    func sweeps(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep("fmnist"))
        #expect(s.name == "fmnist" && s.seed == 42 && s.status == .running && s.direction == .minimize && s.configText == "name: fmnist\n")
        #expect(try store.sweep(named: "fmnist") == s)
        #expect(try store.sweep(id: s.id) == s)
        #expect(throws: StoreError.conflict("a sweep named 'fmnist' already exists")) { try store.createSweep(newSweep("fmnist")) }
        try store.saveSearcherState(s.id, Data([1, 2, 3]))
        try store.setSweepStatus(s.id, .completed)
        let after = try #require(try store.sweep(id: s.id))
        #expect(after.status == .completed && after.finishedAt != nil && after.searcherState == Data([1, 2, 3]))
        #expect(try store.sweeps().map(\.name) == ["fmnist"])
        #expect(throws: StoreError.self) { try store.setSweepStatus(999, .completed) }
    }

    @Test("trials: numbers unique per sweep; attempts and leases; fencing of stale results", arguments: Backend.allCases)
    func attemptsAndFencing(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep())
        let t = try store.createTrial(NewTrial(sweepID: s.id, number: 0, parametersJSON: "{\"lr\":0.1}", seed: 9))
        #expect(t.status == .queued && t.attempt == 0 && t.seed == 9)
        #expect(throws: StoreError.self) { try store.createTrial(NewTrial(sweepID: s.id, number: 0, parametersJSON: "{}", seed: 1)) }

        let a1 = try store.startAttempt(trialID: t.id, worker: "w1", leaseExpiresAt: 1010)
        #expect(a1 == 1)
        #expect(throws: StoreError.self) { try store.startAttempt(trialID: t.id, worker: "w2", leaseExpiresAt: 1010) }
        #expect(try store.renewLease(trialID: t.id, attempt: 1, until: 1020))
        // Worker w1 is lost: the lease is revoked and the trial queued again.
        #expect(try store.revokeLease(trialID: t.id, attempt: 1, reason: "worker w1 dead"))
        #expect(try store.trial(id: t.id)?.status == .queued)
        let a2 = try store.startAttempt(trialID: t.id, worker: "w2", leaseExpiresAt: 1030)
        #expect(a2 == 2)
        // w1 comes back with its old lease: refused, nothing changes.
        #expect(try store.finishAttempt(trialID: t.id, attempt: 1, outcome: AttemptOutcome(status: .completed, objective: 0.1), metrics: []) == false)
        #expect(try store.renewLease(trialID: t.id, attempt: 1, until: 2000) == false)
        #expect(try store.revokeLease(trialID: t.id, attempt: 1, reason: "late") == false)
        #expect(try store.trial(id: t.id)?.status == .running)
        #expect(try store.finishAttempt(trialID: t.id, attempt: 2, outcome: AttemptOutcome(status: .completed, objective: 0.5), metrics: []))
        let done = try #require(try store.trial(id: t.id))
        #expect(done.status == .completed && done.objective == 0.5 && done.attempt == 2 && done.worker == "w2")
        // A second result for the same attempt is refused too (nothing runs twice).
        #expect(try store.finishAttempt(trialID: t.id, attempt: 2, outcome: AttemptOutcome(status: .completed, objective: 0.4), metrics: []) == false)
        let kinds = try store.events(sweepID: s.id, limit: 100).map(\.kind)
        #expect(kinds.contains(.leaseRevoked) && kinds.contains(.resultRefused) && kinds.contains(.trialFinished))
    }

    @Test("finished trials are immutable; failed ones can be requeued on request", arguments: Backend.allCases)
    func immutability(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep())
        let done = try completedTrial(store, s, 0, 1.5)
        #expect(throws: StoreError.immutable(trialID: done.id, status: .completed)) {
            try store.startAttempt(trialID: done.id, worker: "w", leaseExpiresAt: 0)
        }
        #expect(throws: StoreError.self) { try store.requeueFailed(trialID: done.id) }
        #expect(try store.trial(id: done.id) == done)

        let f = try store.createTrial(NewTrial(sweepID: s.id, number: 1, parametersJSON: "{}", seed: 1))
        let a = try store.startAttempt(trialID: f.id, worker: "w", leaseExpiresAt: 0)
        #expect(try store.finishAttempt(trialID: f.id, attempt: a, outcome: AttemptOutcome(status: .failed, error: "exit 3", logTail: "boom"), metrics: []))
        let failed = try #require(try store.trial(id: f.id))
        #expect(failed.status == .failed && failed.error == "exit 3" && failed.logTail == "boom" && failed.objective == nil)
        #expect(throws: StoreError.immutable(trialID: f.id, status: .failed)) { try store.startAttempt(trialID: f.id, worker: "w", leaseExpiresAt: 0) }
        try store.requeueFailed(trialID: f.id)
        #expect(try store.startAttempt(trialID: f.id, worker: "w", leaseExpiresAt: 0) == 2)
    }

    @Test("leaderboard: top-k in the sweep's direction, ties by trial number, only completed", arguments: Backend.allCases)
    func leaderboard(_ backend: Backend) throws {
        let store = try backend.make()
        let minSweep = try store.createSweep(newSweep("min", direction: .minimize))
        let maxSweep = try store.createSweep(newSweep("max", direction: .maximize))
        for (i, v) in [0.5, 0.2, 0.9, 0.2, 0.7].enumerated() {
            try completedTrial(store, minSweep, i, v)
            try completedTrial(store, maxSweep, i, v)
        }
        let running = try store.createTrial(NewTrial(sweepID: minSweep.id, number: 9, parametersJSON: "{}", seed: 0))
        _ = try store.startAttempt(trialID: running.id, worker: "w", leaseExpiresAt: 0)
        #expect(try store.leaderboard(sweepID: minSweep.id, top: 3).map(\.trial.number) == [1, 3, 0])
        #expect(try store.leaderboard(sweepID: minSweep.id, top: 3).map(\.rank) == [1, 2, 3])
        #expect(try store.leaderboard(sweepID: maxSweep.id, top: 2).map(\.trial.number) == [2, 4])
        #expect(try store.leaderboard(sweepID: minSweep.id, top: 100).count == 5)
        let summary = try store.summary(sweepID: minSweep.id)
        #expect(summary.counts[.completed] == 5 && summary.counts[.running] == 1 && summary.total == 6)
        #expect(summary.best?.number == 1)
        #expect(throws: StoreError.self) { try store.leaderboard(sweepID: 12345, top: 1) }
    }

    @Test("metrics: batches round-trip; step-range queries; a later attempt's value wins", arguments: Backend.allCases)
    func metrics(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep())
        let t = try store.createTrial(NewTrial(sweepID: s.id, number: 0, parametersJSON: "{}", seed: 0))
        let a1 = try store.startAttempt(trialID: t.id, worker: "w", leaseExpiresAt: 0)
        var batch: [MetricRow] = []
        for step in 0..<20_000 {
            batch.append(MetricRow(trialID: t.id, attempt: a1, name: "loss", step: Int64(step), value: 1 / Double(step + 1), time: Double(step)))
            if step % 10 == 0 { batch.append(MetricRow(trialID: t.id, attempt: a1, name: "accuracy", step: Int64(step), value: 0.5, time: Double(step))) }
        }
        try store.appendMetrics(batch)
        let loss = try store.series(trialID: t.id, name: "loss", steps: nil)
        #expect(loss.count == 20_000 && loss[123] == SeriesPoint(step: 123, value: 1 / 124, time: 123))
        #expect(try store.series(trialID: t.id, name: "loss", steps: 9_000...9_004).map(\.step) == [9000, 9001, 9002, 9003, 9004])
        #expect(try store.series(trialID: t.id, name: "accuracy", steps: 0...25).map(\.step) == [0, 10, 20])
        #expect(try store.metricNames(trialID: t.id) == ["accuracy", "loss"])
        #expect(try store.series(trialID: t.id, name: "nope", steps: nil).isEmpty)

        // Attempt 2 resumes from step 15,000 and re-reports those steps with new values.
        #expect(try store.revokeLease(trialID: t.id, attempt: a1, reason: "lost"))
        let a2 = try store.startAttempt(trialID: t.id, worker: "w2", leaseExpiresAt: 0)
        try store.appendMetrics((15_000..<15_010).map { MetricRow(trialID: t.id, attempt: a2, name: "loss", step: Int64($0), value: -1, time: 0) })
        let resumed = try store.series(trialID: t.id, name: "loss", steps: 14_999...15_010)
        let expected: [Double] = [1.0 / 15_000] + Array(repeating: -1.0, count: 10) + [1.0 / 15_011]
        #expect(resumed.map(\.value) == expected)
        try store.appendMetrics([])
    }

    @Test("checkpoints, workers and the event log", arguments: Backend.allCases)
    func checkpointsWorkersEvents(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep())
        let t = try store.createTrial(NewTrial(sweepID: s.id, number: 0, parametersJSON: "{}", seed: 0))
        #expect(try store.latestCheckpoint(trialID: t.id) == nil)
        try store.recordCheckpoint(trialID: t.id, attempt: 1, step: 100, contentHash: "h100", size: 10, path: "ck/h100")
        try store.recordCheckpoint(trialID: t.id, attempt: 1, step: 200, contentHash: "h200", size: 10, path: "ck/h200")
        #expect(try store.latestCheckpoint(trialID: t.id)?.contentHash == "h200")

        try store.upsertWorker(WorkerRecord(id: "w1", host: "n1", slots: 2, joinedAt: 1, lastSeen: 1, state: .alive))
        try store.upsertWorker(WorkerRecord(id: "w1", host: "n1", slots: 2, joinedAt: 1, lastSeen: 5, state: .dead))
        #expect(try store.workers() == [WorkerRecord(id: "w1", host: "n1", slots: 2, joinedAt: 1, lastSeen: 5, state: .dead)])

        try store.appendEvent(.workerJoined, sweepID: nil, trialID: nil, attempt: nil, workerID: "w1", detail: "joined")
        let events = try store.events(sweepID: nil, limit: 10)
        #expect(events.last?.kind == .workerJoined && events.last?.workerID == "w1")
        #expect(events.first?.kind == .sweepCreated)
    }

    @Test("group commit: trials created and started together; many attempts finished in one call, stale ones refused", arguments: Backend.allCases)
    func batches(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep())
        let started = try store.createAndStartTrials((0..<5).map { NewTrial(sweepID: s.id, number: $0, parametersJSON: "{\"k\":\($0)}", seed: UInt64($0)) },
                                                     worker: "w", leaseExpiresAt: 50)
        #expect(started.map(\.number) == [0, 1, 2, 3, 4])
        #expect(try started.allSatisfy { try store.trial(id: $0.id) == $0 })
        #expect(throws: StoreError.self) {
            try store.createAndStartTrials([NewTrial(sweepID: s.id, number: 9, parametersJSON: "{}", seed: 0),
                                            NewTrial(sweepID: s.id, number: 2, parametersJSON: "{}", seed: 0)], worker: "w", leaseExpiresAt: 0)
        }
        #expect(try store.trials(sweepID: s.id).count == 5, "a failed batch leaves nothing behind")
        let ends = started.map { t in
            AttemptEnd(trialID: t.id, attempt: t.number == 3 ? 7 : 1, outcome: AttemptOutcome(status: .completed, objective: Double(t.number)),
                       metrics: [MetricRow(trialID: t.id, attempt: 1, name: "loss", step: 1, value: Double(t.number), time: 0)])
        }
        #expect(try store.finishAttempts(ends) == [true, true, true, false, true])
        #expect(try store.trial(id: started[3].id)?.status == .running)
        #expect(try store.series(trialID: started[3].id, name: "loss", steps: nil).isEmpty, "a refused result stores no metrics")
        #expect(try store.series(trialID: started[4].id, name: "loss", steps: nil).map(\.value) == [4])
        #expect(try store.finishAttempts([]) == [])
    }

    @Test("a retried attempt keeps its error; queued trials can be cancelled", arguments: Backend.allCases)
    func retriesAndCancel(_ backend: Backend) throws {
        let store = try backend.make()
        let s = try store.createSweep(newSweep())
        let t = try store.createTrial(NewTrial(sweepID: s.id, number: 0, parametersJSON: "{}", seed: 0))
        let a = try store.startAttempt(trialID: t.id, worker: "w", leaseExpiresAt: 0)
        #expect(try store.revokeLease(trialID: t.id, attempt: a, reason: "attempt failed; retrying"))
        try store.recordAttemptError(trialID: t.id, error: "exit status 3", logTail: "boom")
        let queued = try #require(try store.trial(id: t.id))
        #expect(queued.status == .queued && queued.error == "exit status 3" && queued.logTail == "boom")
        try store.cancelQueued(trialID: t.id, reason: "sweep cancelled")
        #expect(try store.trial(id: t.id)?.status == .cancelled)
        #expect(throws: StoreError.self) { try store.cancelQueued(trialID: t.id, reason: "again") }
        #expect(throws: StoreError.immutable(trialID: t.id, status: .cancelled)) { try store.startAttempt(trialID: t.id, worker: "w", leaseExpiresAt: 0) }
    }
}
