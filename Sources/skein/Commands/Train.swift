import ArgumentParser
import Foundation
import SkeinTensor
import SkeinTrain
import SkeinCollective
import SkeinConfig
import SkeinWorker

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

    @Option(help: "Data-parallel on this machine: start this many ranks (processes), 1 BLAS thread each unless --threads says otherwise.")
    var ranks: Int?

    @Option(help: "Data-parallel with --ranks: pin rank r to the r-th CPU this process may use, round robin when there are more ranks than CPUs (core), or leave placement to the scheduler (none). Pinning keeps each rank's model and optimizer state in its own core's cache.")
    var bind: CPUBinding = .core

    @Option(help: "Data-parallel: this process's rank (0 prints and writes checkpoints). Needs --peers.")
    var rank: Int?

    @Option(help: "Data-parallel: every rank's address, comma-separated, in rank order (ipc://PATH or tcp://HOST:PORT).")
    var peers: String?

    @Option(help: "Data-parallel: seconds a rank waits for a silent peer before the run fails naming it.")
    var peerTimeout: Double = 30

    @Option(help: .hidden) var groupEpoch: UInt64?
    /// Set by `--ranks`: on a failed collective, report it and wait on stdin for the re-formed group.
    @Flag(help: .hidden) var supervised = false

    func run() throws {
        if let ranks, rank == nil {
            guard ranks >= 1 else { throw CLIError("--ranks must be at least 1 (got \(ranks))") }
            if ranks > 1 { return try launchLocalRanks(ranks) }
        }
        if supervised, let text = ProcessInfo.processInfo.environment["SKEIN_LAUNCHER_PID"], let launcher = Int32(text) {
            // A rank ends with its launcher: one killed outright (SIGKILL) cannot stop its
            // ranks, which would otherwise train on, or re-form groups, with nobody reading.
            let line = Data("skein: rank \(self.rank.map(String.init) ?? "?"): the launcher (pid \(launcher)) is gone; stopping\n".utf8)
            Thread.detachNewThread {
                while getppid() == launcher { sleep(1) }
                FileHandle.standardError.write(line)
                _exit(70)
            }
        }
        var cfg = try cli { () throws(ConfigError) in try YAMLConfig.loadTrainConfig(config) }
        if let checkpointDir { cfg.checkpoint.directory = checkpointDir }
        if let epochs { cfg.training.epochs = epochs }
        if let threads { BLAS.setThreadCount(threads) }
        var rank = 0, world = 1
        var reducer: RingReducer?
        if let r = self.rank {
            guard let peers, !peers.isEmpty else { throw CLIError("--rank needs --peers (every rank's address, in rank order)") }
            let addresses = peers.split(separator: ",").map(String.init)
            guard r >= 0, r < addresses.count else { throw CLIError("--rank \(r) is outside --peers (\(addresses.count) addresses)") }
            rank = r; world = addresses.count
            if threads == nil && ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { BLAS.setThreadCount(1) }
            let timeout = Duration.milliseconds(Int(peerTimeout * 1000))
            // The epoch ties the group to this config and seed: a rank started for another run is refused.
            let epoch = groupEpoch ?? UInt64(truncatingIfNeeded: cfg.seed &* 1_000_003 &+ UInt64(world))
            let group = try cli { () throws(CollectiveError) in try joinRing(rank: r, addresses: addresses, epoch: epoch, timeout: timeout) }
            reducer = RingReducer(group: group)
        }
        let run = try cli { () throws(TrainError) in
            try TrainingRun(config: cfg, rank: rank, world: world, reducer: reducer ?? LocalReducer())
        }
        // Fault injection for tests: SKEIN_INJECT_KILL_BEFORE_EVALUATION=R:E kills rank R just
        // before epoch E's shared evaluation (after the epoch's totals were summed).
        if let spec = ProcessInfo.processInfo.environment["SKEIN_INJECT_KILL_BEFORE_EVALUATION"],
           case let parts = spec.split(separator: ":"), parts.count == 2, let victim = Int(parts[0]), let epoch = Int(parts[1]),
           victim == rank {
            run.willEvaluate = { if $0 == epoch { kill(getpid(), SIGKILL) } }
        }
        if let resume {
            try cli { () throws(TrainError) in try run.resume(from: resume) }
            print("resumed from \(resume) at epoch \(run.trainer.epoch), step \(run.trainer.globalStep)")
        }
        let t = run.trainer
        if !json && rank == 0 {
            print("model \(t.network.layers.map(\.description).joined(separator: " ")) · \(t.network.parameterCount) parameters")
            print("data  \(run.splits.train.name) \(run.splits.train.count) rows" +
                  (run.splits.validation.map { ", validation \($0.count)" } ?? "") + (run.splits.test.map { ", test \($0.count)" } ?? ""))
            if world > 1 { print("data-parallel: \(world) ranks, global batch \(cfg.training.batchSize)") }
        }
        let progress = ProgressLine(enabled: !json && rank == 0 && isatty(1) != 0)
        var lastCommunication = 0.0
        defer {
            if let group = reducer?.group { try? runBlocking { () throws(CollectiveError) in try await group.close() } }
        }
        let onEvent: (TrainingEvent) -> Void = { event in
            if t.rank > 0 { return }
            switch event {
            case let .step(r):
                progress.show("epoch \(r.epoch + 1)/\(cfg.training.epochs) step \(r.stepInEpoch + 1)/\(t.stepsPerEpoch) loss \(fmt(r.loss)) lr \(fmt(Double(r.learningRate)))")
            case let .epoch(e):
                progress.clear()
                if json {
                    var o: [String: Any] = ["epoch": e.epoch, "train_loss": e.trainLoss, "seconds": e.seconds]
                    if let reducer { o["communication_seconds"] = reducer.communicationSeconds - lastCommunication }
                    if !e.rankComputeSeconds.isEmpty {
                        // Per rank: where each rank's epoch went (see `skein status` for groups in sweeps).
                        o["rank_compute_seconds"] = e.rankComputeSeconds
                        o["rank_allreduce_seconds"] = e.rankAllreduceSeconds
                        o["rank_wait_seconds"] = e.rankWaitSeconds
                    }
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
                    if let reducer { line += String(format: " (allreduce %.2fs)", reducer.communicationSeconds - lastCommunication) }
                    print(line)
                }
                lastCommunication = reducer?.communicationSeconds ?? 0
            case let .checkpoint(path, _):
                if !json { progress.clear(); print("checkpoint \(path)") }
            }
            fflush(nil) // a pipe (the --ranks launcher, a log collector) sees each line as it happens
        }
        // Fault injection for tests: SKEIN_INJECT_STALL=R:S makes rank R (as started) stall for
        // twice the peer timeout whenever it is about to take global step S: a fault that recurs.
        let stallAt = ProcessInfo.processInfo.environment["SKEIN_INJECT_STALL"].flatMap { spec -> Int? in
            let parts = spec.split(separator: ":")
            guard parts.count == 2, let victim = Int(parts[0]), victim == rank else { return nil }
            return Int(parts[1])
        }
        let stall = { if t.globalStep == stallAt { Thread.sleep(forTimeInterval: 2 * peerTimeout) }; return false }
        var retired: [RingGroup] = []
        while true {
            do {
                try run.run(shouldStop: stall, onEvent: onEvent)
                break
            } catch let failure as CollectiveError where supervised {
                // A rank was lost (or is silent): tell the launcher how far this rank got, take the
                // re-formed group it sends back, and continue from the most advanced survivor's state.
                // The old group is kept, not closed: closing a link whose peer died can hang nng 1.5.2.
                print("@skein failed \(t.wholeStateStep) \(failure)")
                fflush(nil)
                guard let line = readLine(), case let parts = line.split(separator: " "), parts.count == 4, parts[0] == "group",
                      let epoch = UInt64(parts[1]), let newRank = Int(parts[2]) else {
                    throw CLIError("rank \(t.rank): the group failed (\(failure)) and no new group came")
                }
                let addresses = parts[3].split(separator: ",").map(String.init)
                let timeout = Duration.milliseconds(Int(peerTimeout * 1000))
                let group = try cli { () throws(CollectiveError) in try joinRing(rank: newRank, addresses: addresses, epoch: epoch, timeout: timeout) }
                if let old = reducer?.group { retired.append(old) }
                reducer?.group = group
                run.adoptEpochClose(try resynchronize(t, over: group, owesEpochReport: run.owesEpochReport))
                lastCommunication = reducer?.communicationSeconds ?? 0
                if t.rank == 0 && !json { print("group re-formed: \(t.world) ranks, continuing at step \(t.globalStep)") }
                fflush(nil)
            }
        }
        _ = retired
    }
}

/// Where `skein train --ranks N` places its ranks.
enum CPUBinding: String, ExpressibleByArgument, CaseIterable {
    case core, none
}

extension Train {
    /// `--ranks N`: starts N copies of this command as ranks 0…N−1 linked over ipc:// in a
    /// temporary directory, passes rank 0's output through, and fails if any rank fails.
    func launchLocalRanks(_ n: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skein-ranks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var base = Array(CommandLine.arguments.dropFirst())
        if let i = base.firstIndex(of: "--ranks") { base.removeSubrange(i...min(i + 1, base.count - 1)) }
        base.removeAll { $0.hasPrefix("--ranks=") }
        var cpus: [Int]?
        if bind == .core, let allowed = RankSupervisor.allowedCPUs(),
           FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") {
            // Round robin, as Open MPI's --bind-to core:overload-allowed: with more ranks than
            // CPUs, ranks that share a core still stay put (measured: 4 ranks on 2 cores
            // allreduce 4 MiB 10-20 % faster pinned than left to the scheduler).
            cpus = (0..<n).map { allowed[$0 % allowed.count] }
        }
        let supervisor = RankSupervisor(directory: dir, executable: Bundle.main.executablePath ?? CommandLine.arguments[0],
                                        arguments: base, cpus: cpus)
        try supervisor.run(ranks: n)
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
