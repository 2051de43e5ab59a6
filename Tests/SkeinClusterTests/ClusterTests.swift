import Foundation
import Testing
import SkeinStore
import SkeinTestSupport
import SkeinTransport
import SkeinWire

@Suite("Coordinator and workers (real processes)", .serialized)
struct ClusterTests {
    @Test("a coordinator and 2 workers complete a 6-trial built-in sweep; the leaderboard matches the store", arguments: ["ipc", "tcp"])
    func sweepCompletes(transport: String) async throws {
        let cluster = try await LocalCluster(transport: transport)
        defer { cluster.stop() }
        try cluster.addWorker("w1")
        try cluster.addWorker("w2")
        try await cluster.submit("""
            name: small-\(transport)
            seed: 3
            objective: {metric: val_accuracy, direction: maximize}
            budget: {max_trials: 6}
            trial:
              kind: builtin
              train:
                data: {dataset: fashion-mnist, limit: 600, validation_fraction: 0.2}
                model: {kind: mlp, hidden: [16]}
                training: {epochs: 1, batch_size: 64}
            search:
              method: random
              parameters:
                lr: {loguniform: [0.001, 0.01]}
                hidden: {values: [[16], [32]]}
            """, name: "small-\(transport)")
        let sweep = try await cluster.waitForSweep("small-\(transport)")
        #expect(sweep.status == .completed)
        let store = try cluster.store
        let trials = try store.trials(sweepID: sweep.id)
        #expect(trials.count == 6 && trials.allSatisfy { $0.status == .completed && $0.attempt == 1 && $0.objective != nil })
        #expect(Set(trials.compactMap(\.worker).map { $0.split(separator: "-").first! }) == ["w1", "w2"])
        #expect(try store.series(trialID: trials[0].id, name: "val_accuracy", steps: nil).count == 1)
        #expect(try store.series(trialID: trials[0].id, name: "train_loss", steps: nil).count == 1)

        // The leaderboard, through the CLI from the store and from the coordinator, is the store's ranking.
        let ranked = trials.sorted { a, b in a.objective! != b.objective! ? a.objective! > b.objective! : a.number < b.number }
        let expected: [Int] = ranked.map(\.number)
        let fromStore = try ChildProcess("skein", ["leaderboard", sweep.name, "--store", "\(cluster.dir)/skein.sqlite", "--format", "csv", "--top", "6"])
        #expect(try await fromStore.waitForExit() == 0)
        let storeRanks = fromStore.output.dropFirst().map { Int($0.split(separator: ",")[1])! }
        #expect(storeRanks == expected)
        let live = try ChildProcess("skein", ["leaderboard", sweep.name, "--coordinator", cluster.address, "--token-file", "\(cluster.dir)/token",
                                              "--format", "csv", "--top", "6"])
        #expect(try await live.waitForExit() == 0, "\(live.log)")
        #expect(live.output.dropFirst().map { Int($0.split(separator: ",")[1])! } == expected)
    }

    @Test("a worker started mid-sweep gets a trial within one heartbeat interval")
    func lateWorker() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("early1")
        try cluster.addWorker("early2")
        try await cluster.submit(slowSweep("late", trials: 16, seconds: 1.5, seed: 1), name: "late")
        let store = try cluster.store
        // Wait until the first two workers are busy, then add a third.
        let deadline = ContinuousClock.now + .seconds(30)
        while try store.sweep(named: "late").map({ try store.summary(sweepID: $0.id).counts[.running] ?? 0 }) ?? 0 < 2 {
            guard ContinuousClock.now < deadline else { Issue.record("trials never started"); return }
            try await Task.sleep(for: .milliseconds(50))
        }
        try cluster.addWorker("late")
        let sweep = try await cluster.waitForSweep("late")
        let worker = try #require(try store.workers().first { $0.id.hasPrefix("late-") }, "the late worker never joined:\n\(cluster.workers.last?.log ?? "")")
        let first = try #require(try store.trials(sweepID: sweep.id).filter { $0.worker == worker.id }.compactMap(\.startedAt).min(),
                                 "the late worker got no trial:\n\(cluster.workers.last?.log.suffix(3000) ?? "")")
        #expect(first - worker.joinedAt <= cluster.heartbeat, "joined at \(worker.joinedAt), first trial at \(first)")
        #expect(sweep.status == .completed)
    }

    @Test("grid search with 4 workers runs every grid point exactly once")
    func gridExactlyOnce() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        for i in 0..<4 { try cluster.addWorker("g\(i)", slots: 2) }
        try await cluster.submit("""
            name: grid
            objective: {metric: objective, direction: maximize}
            trial: {kind: noop}
            search:
              method: grid
              parameters:
                a: {values: [1, 2, 3, 4, 5]}
                b: {values: [10, 20, 30, 40]}
                c: {values: [100, 200]}
            """, name: "grid")
        let sweep = try await cluster.waitForSweep("grid")
        let trials = try cluster.store.trials(sweepID: sweep.id)
        #expect(trials.count == 40)
        #expect(trials.allSatisfy { $0.status == .completed && $0.attempt == 1 })
        #expect(Set(trials.map(\.parametersJSON)).count == 40)
        var expected: Set<Double> = []
        for a in 1...5 { for b in [10, 20, 30, 40] { for c in [100, 200] { expected.insert(Double(a + b + c)) } } }
        #expect(Set(trials.compactMap(\.objective)) == expected)
    }

    @Test("random search: the same sweep and seed with 1 and with 3 workers gives identical parameters per trial")
    func randomIndependentOfWorkers() async throws {
        var results: [[Int: String]] = []
        for workers in [1, 3] {
            let cluster = try await LocalCluster()
            defer { cluster.stop() }
            for i in 0..<workers { try cluster.addWorker("r\(i)", slots: 2) }
            try await cluster.submit(noopSweep("rand", trials: 30, seed: 77), name: "rand")
            let sweep = try await cluster.waitForSweep("rand")
            let trials = try cluster.store.trials(sweepID: sweep.id)
            #expect(trials.count == 30)
            results.append(Dictionary(uniqueKeysWithValues: trials.map { ($0.number, $0.parametersJSON) }))
        }
        #expect(results[0] == results[1])
    }

    @Test("an external command reports JSON-lines metrics; a failing one is recorded with exit status and stderr tail, retried up to the limit")
    func externalCommands() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("e1", slots: 2)
        let script = "\(cluster.dir)/trial.py"
        try """
            import json, os, sys
            p = json.loads(os.environ["SKEIN_PARAMS"])
            for step in range(1, 6):
                print(json.dumps({"step": step, "loss": p["x"] / step, "acc": step / 10}), flush=True)
            print("not json, ignored")
            if p["fail"] == 1:
                print("line 1 of the error", file=sys.stderr)
                print("boom: trial %s attempt %s" % (os.environ["SKEIN_TRIAL_NUMBER"], os.environ["SKEIN_ATTEMPT"]), file=sys.stderr)
                sys.exit(3)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        try await cluster.submit("""
            name: ext
            objective: {metric: loss, direction: minimize}
            retries: 2
            trial:
              kind: command
              command: [python3, \(script), --x, "{x}"]
            search:
              method: grid
              parameters:
                x: {values: [1.0, 2.0]}
                fail: {values: [0, 1]}
            """, name: "ext")
        let sweep = try await cluster.waitForSweep("ext")
        let store = try cluster.store
        let trials = try store.trials(sweepID: sweep.id)
        let ok = trials.filter { $0.parametersJSON.contains("\"fail\":0") }
        let bad = trials.filter { $0.parametersJSON.contains("\"fail\":1") }
        #expect(ok.count == 2 && bad.count == 2)
        for t in ok {
            #expect(t.status == .completed && t.attempt == 1)
            #expect(try store.series(trialID: t.id, name: "loss", steps: nil).map(\.step) == [1, 2, 3, 4, 5])
            #expect(try store.series(trialID: t.id, name: "acc", steps: 5...5).first?.value == 0.5)
            let wanted: Double = t.parametersJSON.contains("\"x\":1") ? 0.2 : 0.4
            #expect(t.objective == wanted)
        }
        for t in bad {
            #expect(t.status == .failed)
            #expect(t.attempt == 3) // 1 + 2 retries
            #expect(t.error == "exit status 3")
            #expect(t.logTail?.contains("boom: trial \(t.number) attempt 3") == true, "\(t.logTail ?? "")")
            #expect(t.logTail?.contains("line 1 of the error") == true)
        }
        let events = try store.events(sweepID: sweep.id, limit: 200)
        #expect(events.filter { $0.kind == .leaseRevoked && $0.detail.contains("exit 3") }.count == 4)
    }

    @Test("a wrong token is refused on both sides; garbage on the coordinator's port does not disturb a sweep")
    func securityAndGarbage() async throws {
        let cluster = try await LocalCluster(transport: "tcp")
        defer { cluster.stop() }
        // Wrong token: the worker exits with a clear message, the coordinator logs the refusal.
        let wrong = "\(cluster.dir)/wrong-token"
        try "not-the-token\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        let intruder = try cluster.addWorker("intruder", tokenFile: wrong)
        #expect(try await intruder.waitForExit(timeout: .seconds(20)) != 0)
        #expect(intruder.log.contains("wrong join token"))
        #expect(cluster.coordinator.log.contains("refused worker intruder"), "\(cluster.coordinator.log)")

        try cluster.addWorker("honest", slots: 2)
        try await cluster.submit(noopSweep("steady", trials: 400), name: "steady")
        // While it runs: random bytes on the raw TCP port, and malformed frames over a valid nng link.
        let port = Int(cluster.address.split(separator: ":").last!)!
        for _ in 0..<20 { RawTCP.sendGarbage(port: port, bytes: Int.random(in: 1...4096)) }
        let req = try Socket(.request)
        try req.dial(cluster.address)
        for size in [0, 1, 7, 100, 5000] {
            let ctx = try req.makeContext()
            let reply = try await ctx.request(try Message(bytes: (0..<size).map { _ in UInt8.random(in: 0...255) }), timeout: .seconds(5))
            let decoded = try reply.withUnsafeBytes { (b) throws(WireError) in try ControlMessage.decode(b) }
            guard case let .refusal(r) = decoded else { Issue.record("expected a refusal, got \(decoded.kind)"); continue }
            #expect(r.reason == .malformed)
        }
        // Well-formed but unauthenticated requests are refused too.
        let ctx = try req.makeContext()
        let reply = try await ctx.request(try Message(bytes: ControlMessage.workRequest(WorkRequest(workerID: "forged", freeSlots: 1)).encoded()),
                                          timeout: .seconds(5))
        #expect(try reply.withUnsafeBytes { (b) throws(WireError) in try ControlMessage.decode(b) }.kind == .refusal)

        let sweep = try await cluster.waitForSweep("steady")
        #expect(sweep.status == .completed)
        let trials = try cluster.store.trials(sweepID: sweep.id)
        #expect(trials.count == 400 && trials.allSatisfy { $0.status == .completed })
        #expect(cluster.coordinator.isRunning)
    }

    @Test("a command trial's metric lines reach the store while it runs, not when it exits: from Python, which does not flush by itself")
    func commandMetricsLive() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        // As on a machine without PYTHONUNBUFFERED (this one sets it; empty is unset to Python).
        try cluster.addWorker("w", environment: ["PYTHONUNBUFFERED": ""])
        // One metric line, then it waits for the test's gate before its last line and exit.
        let gate = cluster.dir + "/gate"
        try await cluster.submit(commandSweep("live", trials: 1, seed: 1, command: #"""
            [python3, -c, "import json, os, time\nprint(json.dumps({'step': 1, 'loss': 0.5}))\nwhile not os.path.exists('\#(gate)'):\n    time.sleep(0.02)\nprint(json.dumps({'step': 2, 'loss': 0.25}))"]
            """#), name: "live")
        let store = try cluster.store
        let deadline = ContinuousClock.now + .seconds(20)
        var seen: [SeriesPoint] = []
        while seen.isEmpty, ContinuousClock.now < deadline {
            if let s = try store.sweep(named: "live"), let t = try store.trials(sweepID: s.id).first {
                seen = try store.series(trialID: t.id, name: "loss", steps: nil)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(seen.map(\.step) == [1], "the first metric line did not reach the store while the trial ran")
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        let sweep = try await cluster.waitForSweep("live")
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.objective == 0.25)
        #expect(try store.series(trialID: t.id, name: "loss", steps: nil).map(\.value) == [0.5, 0.25])
    }

    @Test("a worker allowed 150 open files runs 600 command trials: every command's pipes and process are let go, and every trial completes")
    func commandTrialsReleaseDescriptors() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        // A worker starts near 40 descriptors; one that kept two per command (as it did) runs
        // out after about 55 trials. 1,024 is a common default limit.
        let worker = try cluster.addWorker("frugal", slots: 2, launcher: ["/usr/bin/prlimit", "--nofile=150", "--"])
        try await cluster.submit(commandSweep("many", trials: 600, seed: 4, command: #"[/bin/echo, '{"loss": {x}}']"#), name: "many")
        let sweep = try await cluster.waitForSweep("many")
        let trials = try cluster.store.trials(sweepID: sweep.id)
        let unfinished = trials.filter { $0.status != .completed }.prefix(3).map { "trial \($0.number): \($0.status) \($0.error ?? "")" }
        #expect(sweep.status == .completed && trials.count == 600 && unfinished.isEmpty, "\(unfinished)\n\(worker.log.suffix(1500))")
    }

    @Test("a malformed config is refused with one clear line per problem, nothing submitted")
    func malformedConfig() async throws {
        let dir = try TemporaryDirectory.make(prefix: "badcfg")
        let path = "\(dir)/bad.yaml"
        try """
            name: bad
            objective: {metric: loss, direction: up}
            budget: {max_trials: -3}
            trial: {kind: noop}
            search:
              parameters:
                lr: {loguniform: [0, 1]}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let p = try ChildProcess("skein", ["sweep", "launch", path, "--local", "1", "--run-dir", dir])
        #expect(try await p.waitForExit() != 0)
        let lines = p.log.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(p.log)")
        #expect(lines.contains { $0.contains("\(path):2:") && $0.contains("objective.direction") })
        #expect(lines.contains { $0.contains("\(path):3:") && $0.contains("budget.max_trials") })
        #expect(lines.contains { $0.contains("\(path):7:") && $0.contains("loguniform needs low > 0") })
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/skein.sqlite"))
    }
}

/// Writes random bytes to a TCP port and closes (what a port scanner or a confused client does).
enum RawTCP {
    static func sendGarbage(port: Int, bytes: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return }
        let junk = (0..<bytes).map { _ in UInt8.random(in: 0...255) }
        _ = junk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

@Suite("A person acts on sweeps (real processes)", .serialized)
struct OperatorTests {
    func run(_ cluster: LocalCluster, _ args: [String]) async throws -> String {
        let p = try ChildProcess("skein", args + ["--coordinator", cluster.address, "--token-file", "\(cluster.dir)/token"])
        let status = try await p.waitForExit()
        guard status == 0 else { throw ClusterError("skein \(args) exited \(status): \(p.log)") }
        return p.output.joined(separator: "\n")
    }

    @Test("sweep extend adds trials to a finished sweep; trial retry and sweep resume --retry-failed rerun failed trials")
    func extendRetryResume() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("op", slots: 2)
        try await cluster.submit(noopSweep("grow", trials: 5), name: "grow")
        _ = try await cluster.waitForSweep("grow")
        _ = try await run(cluster, ["sweep", "extend", "grow", "--max-trials", "8"])
        let grown = try await cluster.waitForSweep("grow")
        let trials = try cluster.store.trials(sweepID: grown.id)
        #expect(grown.status == .completed && trials.count == 8 && trials.allSatisfy { $0.status == .completed && $0.attempt == 1 })
        // Parameters of trials 5-7 are what an 8-trial sweep would have had from the start.
        let fresh = try await LocalCluster()
        defer { fresh.stop() }
        try fresh.addWorker("f", slots: 2)
        try await fresh.submit(noopSweep("grow", trials: 8), name: "grow")
        let reference = try fresh.store.trials(sweepID: try await fresh.waitForSweep("grow").id)
        #expect(trials.map(\.parametersJSON) == reference.map(\.parametersJSON))

        // A trial that fails on its first attempt only.
        try await cluster.submit("""
            name: flaky
            objective: {metric: loss, direction: minimize}
            trial:
              kind: command
              command: [python3, -c, "import os, sys, json; a = int(os.environ['SKEIN_ATTEMPT']); sys.exit(2) if a == 1 else print(json.dumps({'loss': {x}}))"]
            search:
              method: grid
              parameters:
                x: {values: [1, 2, 3]}
            """, name: "flaky")
        var flaky = try await cluster.waitForSweep("flaky")
        #expect(try cluster.store.trials(sweepID: flaky.id).allSatisfy { $0.status == .failed && $0.attempt == 1 })
        _ = try await run(cluster, ["trial", "retry", "flaky", "1"])
        flaky = try await cluster.waitForSweep("flaky")
        var states = try cluster.store.trials(sweepID: flaky.id).map { ($0.number, $0.status, $0.attempt) }
        #expect(states.map(\.1) == [.failed, .completed, .failed] && states[1].2 == 2)
        _ = try await run(cluster, ["sweep", "resume", "flaky", "--retry-failed"])
        flaky = try await cluster.waitForSweep("flaky")
        states = try cluster.store.trials(sweepID: flaky.id).map { ($0.number, $0.status, $0.attempt) }
        #expect(states.allSatisfy { $0.1 == .completed && $0.2 == 2 }, "\(states)")
        #expect(flaky.status == .completed)
    }
}
