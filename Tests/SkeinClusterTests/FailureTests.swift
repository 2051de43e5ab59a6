import Foundation
import Testing
import SkeinStore
import SkeinTestSupport

/// A sweep of command trials that each take `seconds`, reporting loss = x.
func slowSweep(_ name: String, trials: Int, seconds: Double, seed: Int = 2) -> String {
    commandSweep(name, trials: trials, seed: seed,
                 command: #"[python3, -c, "import json, time; time.sleep(\#(seconds)); print(json.dumps({'loss': {x}}))"]"#)
}

/// A sweep whose trials numbered `open` and up wait until the file `gate` exists.
func gatedSweep(_ name: String, trials: Int, gate: String, open: Int = 4) -> String {
    commandSweep(name, trials: trials, command: #"""
        [python3, -c, "import json, os, time\nwhile int(os.environ['SKEIN_TRIAL_NUMBER']) >= \#(open) and not os.path.exists('\#(gate)'):\n    time.sleep(0.02)\nprint(json.dumps({'loss': {x}}))"]
        """#)
}

@Suite("Failures (real processes, kill -9)", .serialized)
struct FailureTests {
    @Test("kill -9 a worker mid-trial: its lease is revoked after the heartbeat timeout and the trial runs elsewhere")
    func workerKilled() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        let victim = try cluster.addWorker("victim")
        try await cluster.submit(slowSweep("wk", trials: 4, seconds: 1.0), name: "wk")
        let store = try cluster.store
        // Wait until the victim runs something, then kill it without warning.
        let deadline = ContinuousClock.now + .seconds(30)
        while try store.sweep(named: "wk").map({ try store.trials(sweepID: $0.id).contains { $0.status == .running } }) != true {
            guard ContinuousClock.now < deadline else { Issue.record("nothing started"); return }
            try await Task.sleep(for: .milliseconds(20))
        }
        victim.kill(SIGKILL)
        let killedAt = Date().timeIntervalSince1970
        try cluster.addWorker("rescuer")
        let sweep = try await cluster.waitForSweep("wk")
        #expect(sweep.status == .completed)
        let trials = try store.trials(sweepID: sweep.id)
        #expect(trials.count == 4 && trials.allSatisfy { $0.status == .completed })
        let rerun = trials.filter { $0.attempt == 2 }
        #expect(rerun.count == 1, "exactly the killed attempt runs again")
        #expect(rerun.allSatisfy { $0.worker?.hasPrefix("rescuer-") == true })
        let revoked = try store.events(sweepID: sweep.id, limit: 500).filter { $0.kind == .leaseRevoked }
        #expect(revoked.count == 1)
        // Revoked within the detector's bound: dead after 4 heartbeats (2 s), checked every half interval.
        if let r = revoked.first { #expect(r.time - killedAt <= 4 * cluster.heartbeat + cluster.heartbeat, "revoked \(r.time - killedAt) s after the kill") }
    }

    @Test("a worker frozen with SIGSTOP past the timeout loses its lease; thawed with SIGCONT, its result is refused")
    func frozenWorkerIsFenced() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        let frozen = try cluster.addWorker("frozen")
        try await cluster.submit(slowSweep("fz", trials: 2, seconds: 1.5), name: "fz")
        let store = try cluster.store
        let deadline = ContinuousClock.now + .seconds(30)
        while try store.sweep(named: "fz").map({ try store.trials(sweepID: $0.id).contains { $0.status == .running } }) != true {
            guard ContinuousClock.now < deadline else { Issue.record("nothing started"); return }
            try await Task.sleep(for: .milliseconds(20))
        }
        frozen.kill(SIGSTOP)
        try cluster.addWorker("healthy")
        // Past the timeout (dead after 2 s): the lease is revoked and the trial re-runs on the healthy worker.
        while try store.events(sweepID: nil, limit: 500).contains(where: { $0.kind == .leaseRevoked }) == false {
            guard ContinuousClock.now < deadline else { Issue.record("lease never revoked"); return }
            try await Task.sleep(for: .milliseconds(50))
        }
        frozen.kill(SIGCONT)
        let sweep = try await cluster.waitForSweep("fz")
        #expect(sweep.status == .completed)
        let trials = try store.trials(sweepID: sweep.id)
        #expect(trials.allSatisfy { $0.status == .completed })
        // The thawed worker's late result for the revoked lease is refused and logged, and changes nothing.
        let events = try store.events(sweepID: sweep.id, limit: 500)
        let revokedTrial = try #require(events.first { $0.kind == .leaseRevoked }?.trialID)
        let refusedBy = ContinuousClock.now + .seconds(15)
        var refused = false
        while !refused && ContinuousClock.now < refusedBy {
            refused = try store.events(sweepID: sweep.id, limit: 500).contains { $0.kind == .resultRefused && $0.trialID == revokedTrial && $0.attempt == 1 }
            if !refused { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(refused, "the stale result was never refused:\n\(frozen.log.suffix(2000))")
        let t = try #require(try store.trial(id: revokedTrial))
        // Attempt 2 ran under a new lease: on the healthy worker, or on the thawed one after it
        // joined again under a new identity; never on the revoked session.
        let revokedSession = try #require(events.first { $0.kind == .leaseRevoked }?.workerID)
        #expect(t.attempt == 2 && t.status == .completed && t.worker != nil && t.worker != revokedSession)
    }

    @Test("kill -9 the coordinator mid-sweep and restart it: the sweep finishes, no completed trial runs again")
    func coordinatorKilled() async throws {
        var cluster: LocalCluster? = try await LocalCluster()
        let dir = cluster!.dir
        try cluster!.addWorker("a", slots: 2)
        try cluster!.addWorker("b", slots: 2)
        // Trials 4 and up wait for a gate the test opens after the restart, so the sweep is
        // mid-way when the coordinator dies however slowly this machine runs (timing alone let
        // it finish first once).
        let gate = dir + "/gate"
        try await cluster!.submit(gatedSweep("ck", trials: 16, gate: gate), name: "ck")
        let store = try cluster!.store
        let deadline = ContinuousClock.now + .seconds(60)
        while (try store.sweep(named: "ck").map { try store.summary(sweepID: $0.id).counts[.completed] ?? 0 } ?? 0) < 4 {
            guard ContinuousClock.now < deadline else { Issue.record("too slow"); return }
            try await Task.sleep(for: .milliseconds(20))
        }
        cluster!.coordinator.kill(SIGKILL)
        _ = try await cluster!.coordinator.waitForExit()
        let killed = try #require(try store.sweep(named: "ck"))
        #expect(killed.status == .running)
        let before = try store.trials(sweepID: killed.id).filter { $0.status == .completed }
        // Same run directory, same address: the workers reconnect by themselves.
        let restarted = try ChildProcess("skein", ["coordinator", "--listen", cluster!.address, "--run-dir", dir, "--heartbeat", "0.5"])
        defer { restarted.kill() }
        _ = try await restarted.waitForLine(startingWith: "listening ")
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        let sweep = try await waitUntilFinished(store, "ck", coordinator: restarted)
        #expect(sweep.status == .completed)
        let trials = try store.trials(sweepID: sweep.id)
        #expect(trials.count == 16 && trials.allSatisfy { $0.status == .completed })
        for t in before {
            let now = try #require(trials.first { $0.id == t.id })
            #expect(now.attempt == t.attempt && now.objective == t.objective && now.finishedAt == t.finishedAt, "trial \(t.number) changed")
        }
        #expect(restarted.log.contains("resumed sweep ck"))
        cluster?.stop()
        cluster = nil
    }

    func waitUntilFinished(_ store: SQLiteRunStore, _ name: String, coordinator: ChildProcess) async throws -> SweepRecord {
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            if let s = try store.sweep(named: name), s.status != .running { return s }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ClusterError("sweep \(name) did not finish after the restart:\n\(coordinator.log.suffix(3000))")
    }

    static let checkpointedSweep = """
        name: ckpt
        seed: 21
        objective: {metric: val_accuracy, direction: maximize}
        budget: {max_trials: 1}
        trial:
          kind: builtin
          checkpoint: {every_steps: 10}
          train:
            data: {dataset: fashion-mnist, limit: 4000, validation_fraction: 0.1}
            model: {kind: mlp, hidden: [64, 32], dropout: 0.1}
            training: {epochs: 4, batch_size: 32, optimizer: {name: adamw, lr: 0.002}, log_every: 20}
        search:
          method: random
          parameters:
            lr: {loguniform: [0.001, 0.003]}
        """

    @Test("kill -9 a worker mid-trial: the trial resumes from its checkpoint elsewhere and ends bitwise equal to a fault-free run")
    func resumeFromCheckpoint() async throws {
        // Fault-free reference.
        let clean = try await LocalCluster()
        try clean.addWorker("clean")
        try await clean.submit(Self.checkpointedSweep, name: "ckpt")
        let cleanSweep = try await clean.waitForSweep("ckpt", timeout: .seconds(180))
        let reference = try #require(try clean.store.trials(sweepID: cleanSweep.id).first)
        let referenceLoss = try clean.store.series(trialID: reference.id, name: "train_loss", steps: nil)
        clean.stop()

        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        let victim = try cluster.addWorker("victim", environment: LocalCluster.slowSteps)
        try await cluster.submit(Self.checkpointedSweep, name: "ckpt")
        let store = try cluster.store
        let deadline = ContinuousClock.now + .seconds(120)
        // Kill once a checkpoint beyond the first epoch is stored.
        var killedAt: Int64 = 0
        while killedAt == 0 {
            guard ContinuousClock.now < deadline else { Issue.record("no checkpoint appeared"); return }
            if let sweep = try store.sweep(named: "ckpt"), let t = try store.trials(sweepID: sweep.id).first,
               let c = try store.latestCheckpoint(trialID: t.id), c.step >= 150 {
                guard t.status == .running else { Issue.record("the trial ended before a checkpoint past step 150 was seen"); return }
                victim.kill(SIGKILL)
                killedAt = c.step
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        try cluster.addWorker("rescuer")
        let sweep = try await cluster.waitForSweep("ckpt", timeout: .seconds(180))
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.attempt == 2 && t.worker?.hasPrefix("rescuer-") == true)
        // It resumed from a checkpoint at or after the one seen before the kill, not from step 0.
        let note = try #require(t.logTail)
        let resumedStep = Int64(note.split(separator: " ").drop { $0 != "step" }.dropFirst().first?.filter(\.isNumber) ?? "") ?? 0
        #expect(note.contains("resumed from checkpoint"), "\(note)")
        #expect(resumedStep >= killedAt, "resumed at \(resumedStep), checkpoint seen at \(killedAt)")
        // And ended exactly where the fault-free run did.
        #expect(t.objective == reference.objective, "objective \(String(describing: t.objective)) vs \(String(describing: reference.objective))")
        #expect(try store.series(trialID: t.id, name: "train_loss", steps: nil).map(\.value) == referenceLoss.map(\.value))
        #expect(try store.series(trialID: t.id, name: "val_accuracy", steps: nil).map(\.value)
                == clean.store.series(trialID: reference.id, name: "val_accuracy", steps: nil).map(\.value))
    }

    @Test("SIGTERM drains a worker: its trial is checkpointed, handed back, and resumed elsewhere from there")
    func gracefulHandBack() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        let leaver = try cluster.addWorker("leaver", environment: LocalCluster.slowSteps)
        try await cluster.submit(Self.checkpointedSweep, name: "ckpt")
        let store = try cluster.store
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            guard ContinuousClock.now < deadline else { Issue.record("no checkpoint appeared"); return }
            if let sweep = try store.sweep(named: "ckpt"), let t = try store.trials(sweepID: sweep.id).first,
               let c = try store.latestCheckpoint(trialID: t.id), c.step >= 40 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        leaver.kill(SIGTERM)
        #expect(try await leaver.waitForExit(timeout: .seconds(30)) == 0, "\(leaver.log.suffix(2000))")
        let events = try store.events(sweepID: nil, limit: 200)
        let handBack = try #require(events.first { $0.kind == .leaseRevoked })
        #expect(handBack.detail.contains("handed back"))
        let handedAt = try #require(try store.latestCheckpoint(trialID: handBack.trialID!)).step
        try cluster.addWorker("taker")
        let sweep = try await cluster.waitForSweep("ckpt", timeout: .seconds(180))
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.attempt == 2 && t.worker?.hasPrefix("taker-") == true)
        #expect(t.logTail?.contains("resumed from checkpoint") == true && t.logTail?.contains("at step \(handedAt)") == true,
                "\(t.logTail ?? "")")
    }
}
