import Foundation
import SkeinTensor

/// One epoch's metrics.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double?
    public var validation: Evaluation?
    public var test: Evaluation?
    /// Training time of the epoch (steps and gradient reduction; evaluation not included).
    public var seconds: Double
    /// Data-parallel runs: each rank's compute time (steps without the allreduce) and allreduce
    /// time in this epoch, indexed by rank. The slowest computer is the straggler the others
    /// wait for. Empty for a single process.
    public var rankComputeSeconds: [Double] = []
    public var rankAllreduceSeconds: [Double] = []
    /// Each rank's wait for the previous rank's first frame per allreduce, summed over the
    /// epoch: the rank after a straggler waits longest.
    public var rankWaitSeconds: [Double] = []
}

/// What a training run reports as it goes.
public enum TrainingEvent: Sendable {
    case step(StepReport)
    case epoch(EpochReport)
    case checkpoint(path: String, globalStep: Int)
}

/// Drives a `Trainer` through a `TrainConfig`: epochs, per-step and per-epoch metrics,
/// evaluation on the validation and test sets, and checkpoints. Shared by `skein train` and
/// built-in sweep trials.
///
/// As rank `rank` of a data-parallel group of `world`, it trains on its slice of every global
/// batch and `reducer` sums the gradients across the group; every rank then holds the same
/// parameters. The ranks share each evaluation; only rank 0 writes checkpoint files.
public final class TrainingRun {
    public let config: TrainConfig
    public let splits: DataSplits
    public let trainer: Trainer
    public var rank: Int { trainer.rank }
    public var world: Int { trainer.world }
    private let reducer: any GradientReducer
    /// An epoch whose last step is done but whose closing collectives (totals, shared
    /// evaluation) failed: closed first when `run` is called again, after the group re-formed.
    private var pendingClose: PendingClose?
    /// Called before an epoch's shared evaluation with the epoch's number (from 1): a hook for
    /// fault-injection tests, which kill a rank right there.
    public var willEvaluate: ((Int) -> Void)?

    /// What closing an epoch needs: this rank's share of its totals and times.
    struct PendingClose {
        var epoch: Int // from 1
        var lossSum = 0.0, rows = 0.0, correct = 0.0
        var trainingSeconds = 0.0, communication = 0.0, wait = 0.0
    }

    /// Whether an epoch's report is still owed (its closing collectives failed). After a group
    /// re-forms, every rank must agree with rank 0 (`adoptEpochClose`) before `run` continues,
    /// or some would close the epoch while others train on.
    public var owesEpochReport: Bool { pendingClose != nil }

    /// Takes rank 0's answer to `owesEpochReport` after the group re-formed. A rank that had
    /// not finished the epoch's last step (the step's allreduce failed on it, not on rank 0)
    /// joins the closing with nothing to add to the training totals; a rank that owes a report
    /// rank 0 already gave drops it.
    public func adoptEpochClose(_ rankZeroOwes: Bool) {
        if !rankZeroOwes { pendingClose = nil; return }
        if pendingClose == nil { pendingClose = PendingClose(epoch: trainer.epoch) }
    }

    public init(config: TrainConfig, splits: DataSplits? = nil, rank: Int = 0, world: Int = 1,
                reducer: any GradientReducer = LocalReducer()) throws(TrainError) {
        try config.validate()
        self.config = config
        let data: DataSplits
        if let splits { data = splits } else { data = try DataSource.load(config.data, seed: config.seed) }
        self.splits = data
        let (network, loss) = try config.model.build(inputs: data.train.featureCount, outputs: data.train.outputCount)
        guard world >= 1, rank >= 0, rank < world else { throw .invalidConfig("rank \(rank) of a group of \(world)") }
        guard config.training.batchSize >= world else {
            throw .invalidConfig("training.batch_size \(config.training.batchSize) is smaller than the group (\(world) ranks)")
        }
        trainer = try Trainer(network: network, loss: loss, settings: config.training, data: data.train, seed: config.seed,
                              rank: rank, world: world)
        self.reducer = reducer
    }

    /// Continues from a checkpoint file.
    public func resume(from path: String) throws(TrainError) {
        try trainer.restore(Checkpoint.read(from: path), path: path)
    }

    /// When to hand a checkpoint to `run`'s `onCheckpoint` (for a trial's worker to upload):
    /// every `steps` optimiser steps and/or every `seconds` of training, whichever comes first.
    public struct CheckpointPolicy: Sendable {
        public var steps: Int
        public var seconds: Double
        public init(steps: Int = 0, seconds: Double = 0) { self.steps = steps; self.seconds = seconds }
    }

    /// Trains to the end (or until `shouldStop` says so between steps) and returns the last epoch's report.
    /// With a `policy`, `onCheckpoint` receives the training state at those moments (the run's own
    /// checkpoint files, from `config.checkpoint`, are written regardless).
    @discardableResult
    public func run(shouldStop: () -> Bool = { false }, policy: CheckpointPolicy? = nil, onCheckpoint: (Checkpoint) -> Void = { _ in },
                    onEvent: (TrainingEvent) -> Void = { _ in }) throws -> EpochReport? {
        var last: EpochReport?
        if let pending = pendingClose { last = try close(pending, onEvent) }
        var trainingSeconds = 0.0
        var epochCommunicationStart = reducer.communicationSeconds
        var epochWaitStart = reducer.waitSeconds
        var lastCheckpoint = Date()
        var lastOffered = -1
        while !trainer.isFinished {
            if shouldStop() { break }
            if let policy {
                // Every rank decides a step-based checkpoint alike, so it can gather a sharded
                // optimiser's state first; a time-based one (a rank's own clock) takes the last
                // whole state as it is, which is never more than `wholeStateInterval` steps old.
                let bySteps = policy.steps > 0 && trainer.globalStep > 0 && trainer.globalStep % policy.steps == 0 && trainer.stepInEpoch != 0
                if bySteps || (policy.seconds > 0 && Date().timeIntervalSince(lastCheckpoint) >= policy.seconds) {
                    if bySteps { try trainer.completeState(reducer: reducer) }
                    let c = trainer.checkpoint()
                    if c.globalStep != lastOffered { onCheckpoint(c) }
                    lastOffered = c.globalStep
                    lastCheckpoint = Date()
                }
            }
            let stepStart = Date()
            let r = try trainer.step(reducer: reducer)
            trainingSeconds += Date().timeIntervalSince(stepStart)
            if (r.globalStep + 1) % config.training.logEvery == 0 { onEvent(.step(r)) }
            if config.checkpoint.everySteps > 0, (r.globalStep + 1) % config.checkpoint.everySteps == 0, !r.endedEpoch {
                try writeCheckpoint(onEvent)
            }
            if r.endedEpoch {
                let communication = reducer.communicationSeconds - epochCommunicationStart
                let pending = PendingClose(epoch: r.epoch + 1, lossSum: r.epochLossSum, rows: Double(r.epochRows),
                                           correct: Double(r.epochCorrect), trainingSeconds: trainingSeconds,
                                           communication: communication, wait: reducer.waitSeconds - epochWaitStart)
                last = try close(pending, onEvent)
                trainingSeconds = 0
                epochCommunicationStart = reducer.communicationSeconds
                epochWaitStart = reducer.waitSeconds
            }
        }
        return last
    }

    /// Closes an epoch: the group's totals, the shared evaluation, the report and the
    /// checkpoint. If a collective fails, the epoch stays owed and is closed when `run` is
    /// called again (a rank lost there would otherwise cost the epoch's report and, after the
    /// last epoch, the final checkpoint). Closed again after a failure, the training totals
    /// cover only the rows of the ranks that still hold them; the evaluation is whole.
    private func close(_ pending: PendingClose, _ onEvent: (TrainingEvent) -> Void) throws -> EpochReport {
        pendingClose = pending
        let isClassification = trainer.network.outputCount > 1 || trainer.loss == .softmaxCrossEntropy
        var (lossSum, rows, correct) = (pending.lossSum, pending.rows, pending.correct)
        var rankCompute: [Double] = [], rankAllreduce: [Double] = [], rankWait: [Double] = []
        if world > 1 {
            // The epoch's training metrics cover the whole batch, not this rank's slice;
            // each rank's timings go in its own cells, so the sum is every rank's figure.
            var cells = [Float](repeating: 0, count: 3 + 3 * world)
            cells[0] = Float(lossSum); cells[1] = Float(rows); cells[2] = Float(correct)
            cells[3 + rank] = Float(pending.trainingSeconds - pending.communication)
            cells[3 + world + rank] = Float(pending.communication)
            cells[3 + 2 * world + rank] = Float(pending.wait)
            let totals = FloatBuffer(cells)
            try reducer.reduceTotals(totals)
            (lossSum, rows, correct) = (Double(totals.pointer[0]), Double(totals.pointer[1]), Double(totals.pointer[2]))
            rankCompute = (0..<world).map { Double(totals.pointer[3 + $0]) }
            rankAllreduce = (0..<world).map { Double(totals.pointer[3 + world + $0]) }
            rankWait = (0..<world).map { Double(totals.pointer[3 + 2 * world + $0]) }
        }
        willEvaluate?(pending.epoch)
        let (validation, test) = try evaluate()
        pendingClose = nil
        let report = EpochReport(
            epoch: pending.epoch, trainLoss: lossSum / max(rows, 1),
            trainAccuracy: isClassification && trainer.loss == .softmaxCrossEntropy ? correct / max(rows, 1) : nil,
            validation: validation, test: test,
            seconds: pending.trainingSeconds, rankComputeSeconds: rankCompute, rankAllreduceSeconds: rankAllreduce,
            rankWaitSeconds: rankWait)
        onEvent(.epoch(report))
        if pending.epoch % max(config.checkpoint.everyEpochs, 1) == 0 || trainer.isFinished {
            try writeCheckpoint(onEvent)
        }
        return report
    }

    /// The validation and test sets' evaluations of the current parameters. A group shares the
    /// work: each rank evaluates every world-th batch and one exact allreduce of the batches'
    /// results (a loss sum's bits and a count per batch) gives every rank the figures one process
    /// would compute, bit for bit.
    private func evaluate() throws -> (validation: Evaluation?, test: Evaluation?) {
        let sets = [splits.validation, splits.test]
        let parts = sets.map { $0.map { trainer.evaluateBatches($0, shard: rank, of: world) } ?? [] }
        // One allreduce for both sets (a no-op for a single process).
        var cells = parts.joined().flatMap(\.cells)
        try cells.withUnsafeMutableBufferPointer { try reducer.reduceCells($0) }
        var offset = 0
        let evaluations = zip(sets, parts).map { set, batches -> Evaluation? in
            let combined = batches.indices.map { BatchEvaluation(cells: cells[(offset + 2 * $0)...]) }
            offset += 2 * batches.count
            return set.map { Evaluation(batches: combined, of: $0) }
        }
        return (evaluations[0], evaluations[1])
    }

    /// Called by every rank at the same step (a sharded optimiser's state is gathered first).
    private func writeCheckpoint(_ onEvent: (TrainingEvent) -> Void) throws {
        guard let dir = config.checkpoint.directory else { return }
        try trainer.completeState(reducer: reducer)
        guard rank == 0 else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw TrainError.io(path: dir, reason: "cannot create checkpoint directory")
        }
        let path = "\(dir)/step-\(String(format: "%08d", trainer.globalStep)).ckpt"
        try trainer.checkpoint().write(to: path)
        onEvent(.checkpoint(path: path, globalStep: trainer.globalStep))
    }
}
