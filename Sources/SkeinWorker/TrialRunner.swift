import Foundation
import SkeinCollective
import SkeinConfig
import SkeinSearch
import SkeinTensor
import SkeinTrain
import SkeinWire
import Synchronization

/// How a trial attempt ended, before it is sent to the coordinator.
public struct TrialResult: Sendable {
    public var outcome: TrialFinished.Outcome
    public var objective: Double
    public var exitStatus: Int32
    public var error: String
    public var logTail: String
}

/// A flag a trial checks between steps; set when its lease is revoked or the worker drains.
public final class StopFlag: Sendable {
    private let value = Atomic<Int>(0)
    public enum Reason: Int { case none = 0, revoked = 1, draining = 2, timedOut = 3 }
    public init() {}
    public func stop(_ r: Reason) { _ = value.compareExchange(expected: 0, desired: r.rawValue, ordering: .relaxed) }
    public var reason: Reason { Reason(rawValue: value.load(ordering: .relaxed)) ?? .none }
    public var isSet: Bool { reason != .none }
}

/// Runs one attempt of a trial: built-in training, an external command, or a no-op.
public struct TrialRunner: Sendable {
    /// Where checkpoints and scratch files of trials go.
    public let workDirectory: String

    public init(workDirectory: String) {
        self.workDirectory = workDirectory
    }

    public func run(_ a: Assignment, metrics: MetricBuffer, stop: StopFlag, checkpoints: CheckpointOutbox = CheckpointOutbox(),
                    resume: [UInt8]? = nil) async -> TrialResult {
        let spec: TrialSpec
        do {
            spec = try TrialSpec.decode(json: a.trialSpecJSON)
        } catch {
            return TrialResult(outcome: .failed, objective: .nan, exitStatus: -1, error: "invalid trial spec: \(error)", logTail: "")
        }
        let checkpointDir = "\(workDirectory)/checkpoints/\(a.sweepName)/trial-\(a.trialNumber)"
        switch spec.kind {
        case .noop:
            return noop(a, spec, metrics)
        case .builtin:
            return await runOnThread { builtin(a, spec, metrics, stop, checkpoints, resume) }
        case .command:
            return await CommandTrial(assignment: a, spec: spec, checkpointDir: checkpointDir).run(metrics: metrics, stop: stop)
        }
    }

    func noop(_ a: Assignment, _ spec: TrialSpec, _ metrics: MetricBuffer) -> TrialResult {
        let params = (try? JSONDecoder().decode([String: ParameterValue].self, from: Data(a.parametersJSON.utf8))) ?? [:]
        let objective = params.values.compactMap(\.number).reduce(0, +)
        metrics.add(MetricPoint(name: spec.objective.isEmpty ? "objective" : spec.objective, step: 0, value: objective,
                                time: Date().timeIntervalSince1970))
        return TrialResult(outcome: .completed, objective: objective, exitStatus: 0, error: "", logTail: "")
    }

    /// Training is CPU-bound and synchronous: it runs on its own thread, never on the
    /// cooperative pool, so heartbeats and metric flushing stay on time.
    func runOnThread(_ body: @escaping @Sendable () -> TrialResult) async -> TrialResult {
        await withCheckedContinuation { c in
            let t = Thread { c.resume(returning: body()) }
            t.stackSize = 8 << 20
            t.start()
        }
    }

    func builtin(_ a: Assignment, _ spec: TrialSpec, _ metrics: MetricBuffer, _ stop: StopFlag, _ checkpoints: CheckpointOutbox,
                 _ resume: [UInt8]?) -> TrialResult {
        func failed(_ e: String) -> TrialResult { TrialResult(outcome: .failed, objective: .nan, exitStatus: -1, error: e, logTail: "") }
        guard var config = spec.train else { return failed("builtin trial without a training config") }
        do {
            config = try ParameterBinding.apply(a.parametersJSON, to: config)
        } catch {
            return failed("\(error)")
        }
        config.seed = a.seed
        config.checkpoint.directory = nil // checkpoints during trials arrive with the fault-tolerance work
        // Process-wide; with one thread per trial, OpenBLAS runs in the calling thread, so
        // concurrent slots do not share its thread pool.
        BLAS.setThreadCount(spec.blasThreads)
        let objectiveName = spec.objective
        var objective = Double.nan
        var notes: [String] = []
        // A data-parallel trial: join the group's ring first (every rank of the group does).
        var reducer: RingReducer?
        var closedCleanly = false
        defer { if let group = reducer?.group, !closedCleanly { RetiredGroups.shared.keep(group) } }
        if a.world > 1 {
            let addresses = a.peers.split(separator: ",").map(String.init)
            guard addresses.count == Int(a.world) else { return failed("group of \(a.world) ranks with \(addresses.count) addresses") }
            let rank = Int(a.rank), epoch = a.groupEpoch, timeout = Duration.milliseconds(Int(spec.peerTimeoutSeconds * 1000))
            do {
                reducer = RingReducer(group: try joinRing(rank: rank, addresses: addresses, epoch: epoch, timeout: timeout))
            } catch {
                return TrialResult(outcome: .groupUnformed, objective: .nan, exitStatus: 0, error: "could not form the group: \(error)", logTail: "")
            }
        }
        // Rank 0 speaks for a group: metrics and checkpoints come from it alone (the ranks hold
        // the same parameters after every step).
        let speaks = a.rank == 0
        do {
            let splits = try DataCache.shared.splits(config.data, seed: config.seed)
            let run = try TrainingRun(config: config, splits: splits, rank: Int(a.rank), world: Int(a.world), reducer: reducer ?? LocalReducer())
            if let resume {
                try run.trainer.restore(try Checkpoint.decode(resume, path: "checkpoint \(a.resumeFrom.prefix(12))"))
                notes.append("[skein: resumed from checkpoint \(a.resumeFrom.prefix(12)) at step \(run.trainer.globalStep), epoch \(run.trainer.epoch)]")
            }
            let now = { Date().timeIntervalSince1970 }
            let policy = TrainingRun.CheckpointPolicy(steps: spec.checkpointEverySteps, seconds: spec.checkpointEverySeconds)
            // Fault injection for testing straggler handling: a pause before every step.
            let delay = UInt32(ProcessInfo.processInfo.environment["SKEIN_INJECT_STEP_DELAY_MS"] ?? "") ?? 0
            try run.run(shouldStop: { if delay > 0 { usleep(delay * 1000) }; return stop.isSet }, policy: policy, onCheckpoint: { c in
                if speaks { checkpoints.offer(step: Int64(c.globalStep), bytes: c.encoded()) }
            }, onEvent: { event in
                guard speaks else { return }
                switch event {
                case let .step(r):
                    metrics.add(MetricPoint(name: "train_loss_step", step: Int64(r.globalStep + 1), value: r.loss, time: now()))
                    metrics.add(MetricPoint(name: "lr", step: Int64(r.globalStep + 1), value: Double(r.learningRate), time: now()))
                case let .epoch(e):
                    var values: [(String, Double)] = [("train_loss", e.trainLoss), ("epoch_seconds", e.seconds)]
                    if let acc = e.trainAccuracy { values.append(("train_accuracy", acc)) }
                    if let v = e.validation { values.append(("val_loss", v.loss)); if let acc = v.accuracy { values.append(("val_accuracy", acc)) } }
                    if let v = e.test { values.append(("test_loss", v.loss)); if let acc = v.accuracy { values.append(("test_accuracy", acc)) } }
                    for (r, c) in e.rankComputeSeconds.enumerated() { values.append(("compute_seconds.r\(r)", c)) }
                    for (r, c) in e.rankAllreduceSeconds.enumerated() { values.append(("allreduce_seconds.r\(r)", c)) }
                    for (r, c) in e.rankWaitSeconds.enumerated() { values.append(("wait_seconds.r\(r)", c)) }
                    for (name, value) in values {
                        metrics.add(MetricPoint(name: name, step: Int64(e.epoch), value: value, time: now()))
                        if name == objectiveName { objective = value }
                    }
                case .checkpoint:
                    break
                }
            })
            if let group = reducer?.group, run.trainer.isFinished {
                // Leave the ring cleanly so no rank loses the last step's frames.
                closedCleanly = (try? runBlocking { () throws(CollectiveError) in try await group.close() }) != nil
            }
            if stop.reason == .draining && !run.trainer.isFinished && speaks {
                // Hand the trial back with its latest state, so the next worker loses nothing.
                let c = run.trainer.checkpoint()
                checkpoints.offer(step: Int64(c.globalStep), bytes: c.encoded())
                notes.append("[skein: handed back at step \(c.globalStep)]")
            }
        } catch let e as CollectiveError {
            // A rank was lost or went silent: not the trial's fault. Hand the attempt back (no
            // retry used); it resumes from its last checkpoint with a new group.
            return TrialResult(outcome: .handedBack, objective: .nan, exitStatus: 0, error: "data-parallel group failed: \(e)",
                               logTail: (notes + ["[skein: rank \(a.rank) of \(a.world): \(e)]"]).joined(separator: "\n"))
        } catch {
            return failed("\(error)")
        }
        let tail = notes.joined(separator: "\n")
        switch stop.reason {
        case .revoked: return TrialResult(outcome: .cancelled, objective: .nan, exitStatus: 0, error: "lease revoked", logTail: tail)
        case .draining: return TrialResult(outcome: .handedBack, objective: .nan, exitStatus: 0, error: "worker draining", logTail: tail)
        case .timedOut: return failed("timed out")
        case .none: break
        }
        if objective.isNaN {
            return failed("training finished but never produced the objective metric '\(objectiveName)' " +
                          "(built-in metrics: train_loss, train_accuracy, val_loss, val_accuracy, test_loss, test_accuracy)")
        }
        return TrialResult(outcome: .completed, objective: objective, exitStatus: 0, error: "", logTail: tail)
    }
}

/// The latest checkpoint a trial produced that is not yet uploaded. Training offers without
/// waiting; the worker uploads in the background. Only the newest matters, so an older
/// pending one is replaced (memory stays at one checkpoint per attempt).
public final class CheckpointOutbox: Sendable {
    private let pending = Mutex<(step: Int64, bytes: [UInt8])?>(nil)
    public init() {}
    public func offer(step: Int64, bytes: [UInt8]) { pending.withLock { $0 = (step, bytes) } }
    public func take() -> (step: Int64, bytes: [UInt8])? { pending.withLock { p in defer { p = nil }; return p } }
}

/// Data sets loaded once per worker process and shared by its trials.
final class DataCache: Sendable {
    static let shared = DataCache()
    private let cache = Mutex<[String: DataSplits]>([:])

    func splits(_ config: DataConfig, seed: UInt64) throws -> DataSplits {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let key = String(decoding: (try? encoder.encode(config)) ?? Data(), as: UTF8.self) + "#\(config.validationFraction > 0 ? seed : 0)"
        if let hit = cache.withLock({ $0[key] }) { return hit }
        let loaded = try DataSource.load(config, seed: seed)
        cache.withLock { $0[key] = loaded }
        return loaded
    }
}
