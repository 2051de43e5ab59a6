import Foundation

/// One epoch's metrics.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double?
    public var validation: Evaluation?
    public var test: Evaluation?
    public var seconds: Double
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
public final class TrainingRun {
    public let config: TrainConfig
    public let splits: DataSplits
    public let trainer: Trainer

    public init(config: TrainConfig, splits: DataSplits? = nil) throws(TrainError) {
        try config.validate()
        self.config = config
        let data: DataSplits
        if let splits { data = splits } else { data = try DataSource.load(config.data, seed: config.seed) }
        self.splits = data
        let (network, loss) = try config.model.build(inputs: data.train.featureCount, outputs: data.train.outputCount)
        trainer = try Trainer(network: network, loss: loss, settings: config.training, data: data.train, seed: config.seed)
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
        var start = Date()
        var lastCheckpoint = Date()
        while !trainer.isFinished {
            if shouldStop() { break }
            if let policy, (policy.steps > 0 && trainer.globalStep > 0 && trainer.globalStep % policy.steps == 0 && trainer.stepInEpoch != 0)
                || (policy.seconds > 0 && Date().timeIntervalSince(lastCheckpoint) >= policy.seconds) {
                onCheckpoint(trainer.checkpoint())
                lastCheckpoint = Date()
            }
            let r = try trainer.step()
            if (r.globalStep + 1) % config.training.logEvery == 0 { onEvent(.step(r)) }
            if config.checkpoint.everySteps > 0, (r.globalStep + 1) % config.checkpoint.everySteps == 0, !r.endedEpoch {
                try writeCheckpoint(onEvent)
            }
            if r.endedEpoch {
                let isClassification = trainer.network.outputCount > 1 || trainer.loss == .softmaxCrossEntropy
                let report = EpochReport(
                    epoch: r.epoch + 1, trainLoss: r.epochLossSum / Double(max(r.epochRows, 1)),
                    trainAccuracy: isClassification && trainer.loss == .softmaxCrossEntropy ? Double(r.epochCorrect) / Double(max(r.epochRows, 1)) : nil,
                    validation: splits.validation.map { trainer.evaluate($0) },
                    test: splits.test.map { trainer.evaluate($0) },
                    seconds: Date().timeIntervalSince(start))
                onEvent(.epoch(report))
                last = report
                if (r.epoch + 1) % max(config.checkpoint.everyEpochs, 1) == 0 || trainer.isFinished {
                    try writeCheckpoint(onEvent)
                }
                start = Date()
            }
        }
        return last
    }

    private func writeCheckpoint(_ onEvent: (TrainingEvent) -> Void) throws(TrainError) {
        guard let dir = config.checkpoint.directory else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw .io(path: dir, reason: "cannot create checkpoint directory")
        }
        let path = "\(dir)/step-\(String(format: "%08d", trainer.globalStep)).ckpt"
        try trainer.checkpoint().write(to: path)
        onEvent(.checkpoint(path: path, globalStep: trainer.globalStep))
    }
}
