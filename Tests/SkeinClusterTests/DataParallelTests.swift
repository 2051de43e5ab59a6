import Foundation
import Testing
import SkeinTestSupport

/// Data-parallel training with real processes: `skein train --ranks 2` (two ranks linked by the
/// ring allreduce over ipc://) against one process with the same global batch.
@Suite("Data-parallel training (separate processes)", .serialized)
struct DataParallelTests {
    /// A quick MLP on Fashion-MNIST rows, global batch 256 (default: 12,000 rows, 3 epochs, no dropout).
    func config(in dir: String, name: String = "dp-test", seed: Int = 7, limit: Int = 12000, dropout: Double = 0,
                epochs: Int = 3, extra: String = "") throws -> String {
        let path = "\(dir)/\(name).yaml"
        try """
        name: \(name)
        seed: \(seed)
        data: {dataset: fashion-mnist, limit: \(limit), normalize: standard}
        model: {kind: mlp, hidden: [64], activation: relu, dropout: \(dropout)}
        training:
          epochs: \(epochs)
          batch_size: 256
          optimizer: {name: adam, lr: 0.002}
          log_every: 1000
        \(extra)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func train(_ args: [String]) async throws -> [[String: Double]] {
        let p = try ChildProcess("skein", ["train"] + args + ["--json"])
        let status = try await p.waitForExit(timeout: .seconds(300))
        guard status == 0 else { throw ClusterTestError("skein train \(args) exited \(status): \(p.log.suffix(800))") }
        return p.output.filter { $0.hasPrefix("{") }.map { line in
            let o = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return o.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    @Test("2 ranks reach the accuracy of 1 process with the same global batch; repeated runs give identical numbers")
    func twoRanksMatchOne() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dp")
        let cfg = try config(in: dir)
        let single = try await train([cfg, "--threads", "1"])
        let dp = try await train([cfg, "--ranks", "2"])
        let again = try await train([cfg, "--ranks", "2"])
        #expect(single.count == 3 && dp.count == 3)
        let a1 = try #require(single.last?["test_accuracy"]), a2 = try #require(dp.last?["test_accuracy"])
        // Same global batch and data order; only the order of the gradient sum differs (float
        // rounding), so the curves agree closely.
        #expect(abs(a1 - a2) <= 0.01, "1 process \(a1), 2 ranks \(a2)")
        #expect(a2 > 0.75, "2 ranks learned too little: \(a2)")
        for (x, y) in zip(single, dp) { #expect(abs(x["train_loss"]! - y["train_loss"]!) <= 0.02 * x["train_loss"]!) }
        // Deterministic for a fixed world size: the second 2-rank run gives identical numbers.
        #expect(dp.map { $0["test_loss"] } == again.map { $0["test_loss"] })
        #expect(dp.map { $0["train_loss"] } == again.map { $0["train_loss"] })
        #expect((dp.last?["communication_seconds"] ?? 0) > 0)
    }

    @Test("reduction: exact — 1 process, 2 ranks and 3 ranks end with bitwise identical weights and optimizer state (with dropout)")
    func exactReductionIsWorldSizeIndependent() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpexact")
        func cfg(_ reduction: String) throws -> String {
            let path = "\(dir)/\(reduction).yaml"
            try """
            name: dp-exact
            seed: 11
            data: {dataset: fashion-mnist, limit: 6000, normalize: standard}
            model: {kind: mlp, hidden: [64], activation: relu, dropout: 0.1}
            training:
              epochs: 2
              batch_size: 256
              micro_batch: 32
              reduction: \(reduction)
              optimizer: {name: adamw, lr: 0.002, weight_decay: 0.01}
              log_every: 1000
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        /// Trains and returns the epochs' JSON and the final checkpoint's bytes.
        func run(_ reduction: String, _ args: [String], tag: String) async throws -> ([[String: Double]], Data) {
            let ck = "\(dir)/ck-\(tag)"
            let epochs = try await train([try cfg(reduction), "--checkpoint-dir", ck] + args)
            let last = try #require(try FileManager.default.contentsOfDirectory(atPath: ck).filter { $0.hasSuffix(".ckpt") }.sorted().last)
            return (epochs, try Data(contentsOf: URL(fileURLWithPath: "\(ck)/\(last)")))
        }
        let (one, oneWeights) = try await run("exact", ["--threads", "1"], tag: "e1")
        let (two, twoWeights) = try await run("exact", ["--ranks", "2"], tag: "e2")
        let (three, threeWeights) = try await run("exact", ["--ranks", "3"], tag: "e3")
        #expect(oneWeights == twoWeights, "1 process and 2 ranks differ")
        #expect(oneWeights == threeWeights, "1 process and 3 ranks differ")
        #expect(one.map { $0["test_loss"] } == two.map { $0["test_loss"] } && one.map { $0["test_loss"] } == three.map { $0["test_loss"] })
        #expect((one.last?["test_accuracy"] ?? 0) > 0.7)
        // The comparison can tell: the fast reduction adds in another order for 2 ranks.
        let (_, fastOne) = try await run("fast", ["--threads", "1"], tag: "f1")
        let (_, fastTwo) = try await run("fast", ["--ranks", "2"], tag: "f2")
        #expect(fastOne != fastTwo, "fast reduction unexpectedly identical across world sizes")
    }

    @Test("a sharded optimiser (the default) ends with the bits of every rank updating everything: 2 and 3 ranks, with step checkpoints")
    func shardedOptimizerMatchesUnsharded() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpshard")
        func finalCheckpoint(ranks: Int, sharded: Bool) async throws -> (Data, [String]) {
            // every_steps gathers the moments mid-epoch (23 steps an epoch), the epoch ends too.
            let cfg = try config(in: dir, name: "shard-\(ranks)-\(sharded)", seed: 3, limit: 6000, dropout: 0.1, epochs: 2,
                                 extra: "  shard_optimizer: \(sharded)\ncheckpoint: {every_steps: 10}")
            let ck = "\(dir)/ck-\(ranks)-\(sharded)"
            _ = try await train([cfg, "--ranks", String(ranks), "--checkpoint-dir", ck])
            let names = try FileManager.default.contentsOfDirectory(atPath: ck).filter { $0.hasSuffix(".ckpt") }.sorted()
            return (try Data(contentsOf: URL(fileURLWithPath: "\(ck)/\(try #require(names.last))")), names)
        }
        for ranks in [2, 3] {
            let (sharded, names) = try await finalCheckpoint(ranks: ranks, sharded: true)
            let (unsharded, unshardedNames) = try await finalCheckpoint(ranks: ranks, sharded: false)
            #expect(names == unshardedNames, "\(ranks) ranks: \(names) vs \(unshardedNames)")
            #expect(sharded == unsharded, "\(ranks) ranks: the sharded update ended with other weights or moments")
        }
    }

    @Test("2 ranks with dropout resumed from a mid-epoch checkpoint end with the weights of a run straight through")
    func resumeIsExact() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpresume")
        let cfg = try config(in: dir, name: "dp-resume", seed: 5, limit: 6000, dropout: 0.2, epochs: 2,
                             extra: "checkpoint: {every_steps: 20}")
        func last(_ ck: String) throws -> Data {
            let name = try #require(try FileManager.default.contentsOfDirectory(atPath: ck).filter { $0.hasSuffix(".ckpt") }.sorted().last)
            return try Data(contentsOf: URL(fileURLWithPath: "\(ck)/\(name)"))
        }
        let straight = try await train([cfg, "--ranks", "2", "--checkpoint-dir", "\(dir)/a"])
        // Step 20 lies inside epoch 1 (24 steps of 256 rows): every rank restores rank 0's state.
        let resumed = try await train([cfg, "--ranks", "2", "--checkpoint-dir", "\(dir)/b", "--resume", "\(dir)/a/step-00000020.ckpt"])
        #expect(try last("\(dir)/a") == last("\(dir)/b"), "the resumed group ended with other weights")
        #expect(straight.last?["test_loss"] == resumed.last?["test_loss"] && straight.last?["train_loss"] == resumed.last?["train_loss"])
    }

    @Test("--ranks pins rank r to the r-th CPU it may use, round robin past the last (--bind core), and leaves them free with --bind none")
    func ranksArePinned() async throws {
        func allowed(_ pid: String) -> String? {
            (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))?.split(separator: "\n")
                .first { $0.hasPrefix("Cpus_allowed_list:") }?.split(separator: "\t").last.map(String.init)
        }
        let mine = try #require(allowed("self"))
        let dir = try TemporaryDirectory.make(prefix: "dpbind")
        let cfg = try config(in: dir)
        for bind in ["core", "none"] {
            let p = try ChildProcess("skein", ["train", cfg, "--ranks", "3", "--epochs", "200", "--bind", bind])
            defer { p.kill(SIGTERM) }
            _ = try await p.waitForLine(startingWith: "epoch 1/", timeout: .seconds(120))
            for r in 0..<3 {
                let line = try #require(p.log.split(separator: "\n").first { $0.hasPrefix("rank \(r): pid ") })
                let got = allowed(String(line.split(separator: " ").last!))
                // With --bind core rank r on the (r mod CPUs)-th CPU this process may use (on 2 CPUs:
                // ranks 0 and 2 on the first, rank 1 on the second).
                let cpus = mine.split(separator: ",").flatMap { part -> [Int] in
                    let b = part.split(separator: "-").map { Int($0)! }
                    return Array(b.first!...b.last!)
                }
                let want = bind == "core" ? String(cpus[r % cpus.count]) : mine
                #expect(got == want, "rank \(r) with --bind \(bind): \(got ?? "?") (this process: \(mine))")
            }
        }
    }

    @Test("kill -9 a rank mid-training: the survivors re-form the group, keep their processes and finish (optimiser sharded: from the last whole state; unsharded: from the current step)",
          arguments: [(0, true), (2, true), (1, false)])
    func killedRankRegroups(victim: Int, sharded: Bool) async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpkill")
        let cfg = try config(in: dir, extra: "  shard_optimizer: \(sharded)")
        let p = try ChildProcess("skein", ["train", cfg, "--ranks", "3", "--peer-timeout", "1", "--epochs", "30"])
        let third = try await p.waitForLine(startingWith: "epoch 3/", timeout: .seconds(120))
        // Into the middle of the next epoch (the line ends "… 0.52s (allreduce 0.10s)"), where a
        // sharded optimiser's state is not whole.
        let epochSeconds = third.split(separator: " ").last { $0.hasSuffix("s") && Double($0.dropLast()) != nil }.flatMap { Double($0.dropLast()) }
        try await Task.sleep(for: .seconds(min(epochSeconds ?? 0.2, 4) / 2))
        let pidLine = try #require(p.log.split(separator: "\n").first { $0.hasPrefix("rank \(victim): pid ") })
        let pid = try #require(Int32(pidLine.split(separator: " ").last!))
        kill(pid, SIGKILL)
        let killed = ContinuousClock.now
        let status = try await p.waitForExit(timeout: .seconds(180))
        #expect(status == 0, "\(p.output) \(p.log)")
        let reformed = try #require(p.output.first { $0.hasPrefix("group re-formed: 2 ranks") }, "\(p.output)")
        #expect(p.log.contains("finished with 2 of 3 ranks"), "\(p.log)")
        if sharded {
            // Back to a step every rank held whole: an epoch's end (47 steps an epoch) or a
            // multiple of the gather interval (100).
            let step = try #require(Int(reformed.split(separator: " ").last ?? ""), "\(reformed)")
            #expect(step % 47 == 0 || step % 100 == 0, "\(reformed)")
        }
        // Every epoch was reported once, and training went on to a sensible model.
        let epochs = p.output.filter { $0.hasPrefix("epoch ") }
        #expect(epochs.count == 30, "\(epochs)")
        let last = try #require(epochs.last)
        let acc = Double(last.components(separatedBy: "test loss ").last!.split(separator: " ")[2]) ?? 0
        #expect(acc > 0.75, "\(last)")
        #expect(ContinuousClock.now - killed < .seconds(120))
    }

    @Test("a rank frozen (SIGSTOP) past the peer timeout, then thawed: the group re-forms with every rank and finishes")
    func frozenRankRejoins() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpfreeze")
        let p = try ChildProcess("skein", ["train", try config(in: dir), "--ranks", "3", "--peer-timeout", "1", "--epochs", "12"])
        _ = try await p.waitForLine(startingWith: "epoch 2/", timeout: .seconds(120))
        let line = try #require(p.log.split(separator: "\n").first { $0.hasPrefix("rank 1: pid ") })
        let pid = try #require(Int32(line.split(separator: " ").last!))
        Foundation.kill(pid, SIGSTOP)
        try await Task.sleep(for: .seconds(3))
        Foundation.kill(pid, SIGCONT)
        #expect(try await p.waitForExit(timeout: .seconds(180)) == 0, "\(p.output) \(p.log)")
        #expect(p.output.contains { $0.hasPrefix("group re-formed: 3 ranks") }, "\(p.output)")
        #expect(p.log.contains("0 rank(s) lost so far") && !p.log.contains("finished with"), "\(p.log)")
        #expect(p.output.filter { $0.hasPrefix("epoch ") }.count == 12)
    }

    @Test("a rank that stalls past the peer timeout each time the group reaches one step: after 3 re-forms without progress the run stops, saying so, and its ranks with it")
    func recurringFaultStops() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpstall")
        // 47 steps an epoch: rank 1 stalls before step 60 every time, and the sharded group rolls
        // back to its whole state at step 47 every time.
        let p = try ChildProcess("skein", ["train", try config(in: dir), "--ranks", "2", "--peer-timeout", "1"],
                                 environment: ["SKEIN_INJECT_STALL": "1:60"])
        #expect(try await p.waitForExit(timeout: .seconds(120)) != 0)
        #expect(p.log.components(separatedBy: "re-forming it with 2 rank(s) at step 47").count == 4, "\(p.log.suffix(2000))")
        #expect(p.log.contains("data-parallel run stopped: the group failed 4 times without getting past step 47 (last failure: "),
                "\(p.log.suffix(2000))")
        #expect(p.output.contains { $0.hasPrefix("epoch 1/") } && !p.output.contains { $0.hasPrefix("epoch 2/") }, "\(p.output)")
        let pids = try (0..<2).map { r in
            let line = try #require(p.log.split(separator: "\n").first { $0.hasPrefix("rank \(r): pid ") })
            return try #require(Int32(line.split(separator: " ").last!))
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while pids.contains(where: { Foundation.kill($0, 0) == 0 }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!pids.contains { Foundation.kill($0, 0) == 0 }, "ranks still running after the run stopped: \(pids)")
    }

    @Test("kill -9 the --ranks launcher: its ranks stop within seconds instead of training on")
    func launcherKilled() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dplauncher")
        let p = try ChildProcess("skein", ["train", try config(in: dir), "--ranks", "2", "--epochs", "200"])
        _ = try await p.waitForLine(startingWith: "epoch 1/", timeout: .seconds(120))
        let pids = try (0..<2).map { r in
            let line = try #require(p.log.split(separator: "\n").first { $0.hasPrefix("rank \(r): pid ") })
            return try #require(Int32(line.split(separator: " ").last!))
        }
        p.kill(SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while pids.contains(where: { Foundation.kill($0, 0) == 0 }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!pids.contains { Foundation.kill($0, 0) == 0 }, "ranks still running after their launcher was killed: \(pids)")
        for pid in pids { Foundation.kill(pid, SIGKILL) }
    }

    @Test("a rank killed in an epoch's closing evaluation: the survivors re-form and close that epoch together; no report or checkpoint is lost, the last epoch's included",
          arguments: [(2, 1), (0, 3)])
    func killedDuringEpochClose(victim: Int, epoch: Int) async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpclose")
        let cfg = try config(in: dir)
        let p = try ChildProcess("skein", ["train", cfg, "--ranks", "3", "--peer-timeout", "2", "--checkpoint-dir", "\(dir)/ck"],
                                 environment: ["SKEIN_INJECT_KILL_BEFORE_EVALUATION": "\(victim):\(epoch)"])
        let status = try await p.waitForExit(timeout: .seconds(180))
        #expect(status == 0, "\(p.output) \(p.log)")
        #expect(p.output.contains { $0.hasPrefix("group re-formed: 2 ranks") }, "\(p.output)")
        #expect(p.output.filter { $0.hasPrefix("epoch ") }.map { String($0.prefix(9)) } == ["epoch 1/3", "epoch 2/3", "epoch 3/3"], "\(p.output)")
        let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/ck")) ?? []
        #expect(checkpoints.contains { $0.hasSuffix(".ckpt") }, "final checkpoint missing: \(checkpoints)")
    }

    @Test("a rank whose peer never shows up fails within the peer timeout, naming the rank")
    func missingPeer() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpmissing")
        let cfg = try config(in: dir)
        let peers = "ipc://\(dir)/r0.ipc,ipc://\(dir)/r1.ipc"
        let start = ContinuousClock.now
        let p = try ChildProcess("skein", ["train", cfg, "--rank", "0", "--peers", peers, "--peer-timeout", "1"])
        let status = try await p.waitForExit(timeout: .seconds(30))
        #expect(status != 0)
        #expect(ContinuousClock.now - start < .seconds(15))
        #expect(p.log.contains("rank 1"), "\(p.log)")
    }

    @Test("SKEIN_COLLECTIVE_SPIN_US: a bad value stops a rank with a line naming the variable; a good one trains")
    func spinSetting() async throws {
        let dir = try TemporaryDirectory.make(prefix: "dpspin")
        let cfg = try config(in: dir)
        let peers = "ipc://\(dir)/r0.ipc,ipc://\(dir)/r1.ipc"
        let bad = try ChildProcess("skein", ["train", cfg, "--rank", "0", "--peers", peers], environment: ["SKEIN_COLLECTIVE_SPIN_US": "2ms"])
        #expect(try await bad.waitForExit(timeout: .seconds(30)) != 0)
        #expect(bad.log.contains("SKEIN_COLLECTIVE_SPIN_US") && bad.log.contains("'2ms'"), "\(bad.log)")
        let good = try ChildProcess("skein", ["train", cfg, "--ranks", "2", "--json"], environment: ["SKEIN_COLLECTIVE_SPIN_US": "0"])
        #expect(try await good.waitForExit(timeout: .seconds(300)) == 0, "\(good.log.suffix(800))")
        #expect(good.output.filter { $0.hasPrefix("{") }.count == 3)
    }
}

struct ClusterTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
