import ArgumentParser
import Foundation
import SkeinTensor
import SkeinTrain
import SkeinConfig

/// `skein train CONFIG.yaml`: trains one model locally.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train one model locally from a YAML config, with per-epoch metrics and checkpoints.")

    @Argument(help: "Training config (YAML), e.g. configs/fashion-mlp-train.yaml.")
    var config: String

    @Option(help: "Continue from this checkpoint file.")
    var resume: String?

    @Option(help: "Override the config's checkpoint directory.")
    var checkpointDir: String?

    @Option(help: "Override the number of epochs.")
    var epochs: Int?

    @Option(help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS or all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object per epoch instead of the progress display.")
    var json = false

    func run() throws {
        var cfg = try cli { () throws(ConfigError) in try YAMLConfig.loadTrainConfig(config) }
        if let checkpointDir { cfg.checkpoint.directory = checkpointDir }
        if let epochs { cfg.training.epochs = epochs }
        if let threads { BLAS.setThreadCount(threads) }
        let run = try cli { () throws(TrainError) in try TrainingRun(config: cfg) }
        if let resume {
            try cli { () throws(TrainError) in try run.resume(from: resume) }
            print("resumed from \(resume) at epoch \(run.trainer.epoch), step \(run.trainer.globalStep)")
        }
        let t = run.trainer
        if !json {
            print("model \(t.network.layers.map(\.description).joined(separator: " ")) · \(t.network.parameterCount) parameters")
            print("data  \(run.splits.train.name) \(run.splits.train.count) rows" +
                  (run.splits.validation.map { ", validation \($0.count)" } ?? "") + (run.splits.test.map { ", test \($0.count)" } ?? ""))
        }
        let progress = ProgressLine(enabled: !json && isatty(1) != 0)
        try run.run(onEvent: { event in
            switch event {
            case let .step(r):
                progress.show("epoch \(r.epoch + 1)/\(cfg.training.epochs) step \(r.stepInEpoch + 1)/\(t.stepsPerEpoch) loss \(fmt(r.loss)) lr \(fmt(Double(r.learningRate)))")
            case let .epoch(e):
                progress.clear()
                if json {
                    var o: [String: Any] = ["epoch": e.epoch, "train_loss": e.trainLoss, "seconds": e.seconds]
                    if let a = e.trainAccuracy { o["train_accuracy"] = a }
                    if let v = e.validation { o["val_loss"] = v.loss; if let a = v.accuracy { o["val_accuracy"] = a } }
                    if let v = e.test { o["test_loss"] = v.loss; if let a = v.accuracy { o["test_accuracy"] = a } }
                    let data = try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    var line = "epoch \(e.epoch)/\(cfg.training.epochs)  train loss \(fmt(e.trainLoss))"
                    if let a = e.trainAccuracy { line += " acc \(fmt(a))" }
                    if let v = e.validation { line += "  val loss \(fmt(v.loss))" + (v.accuracy.map { " acc \(fmt($0))" } ?? "") }
                    if let v = e.test { line += "  test loss \(fmt(v.loss))" + (v.accuracy.map { " acc \(fmt($0))" } ?? "") }
                    line += "  \(String(format: "%.2f", e.seconds))s"
                    print(line)
                }
            case let .checkpoint(path, _):
                if !json { progress.clear(); print("checkpoint \(path)") }
            }
        })
    }
}

func fmt(_ x: Double) -> String { String(format: x.magnitude < 1e-3 && x != 0 ? "%.2e" : "%.4f", x) }

/// A single status line redrawn in place on a terminal.
final class ProgressLine {
    let enabled: Bool
    init(enabled: Bool) { self.enabled = enabled }
    func show(_ s: String) {
        guard enabled else { return }
        FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + s).utf8))
    }
    func clear() {
        guard enabled else { return }
        FileHandle.standardOutput.write(Data("\r\u{1B}[2K".utf8))
    }
}
