import Foundation
import Testing
import SkeinStore
import SkeinTestSupport

/// Sweeps whose trials train on several workers at once (`trial.workers: 2`): the coordinator
/// forms a group per attempt from free slots on different workers; the ranks allreduce peer to
/// peer. Real `skein coordinator` and `skein worker` processes.
@Suite("Data-parallel sweep trials (real processes)", .serialized)
struct GroupSweepTests {
    static func sweep(_ name: String, trials: Int, epochs: Int = 3, workers: Int = 2, rows: Int = 6000, hidden: Int = 64) -> String {
        """
        name: \(name)
        seed: 4
        objective: {metric: test_accuracy, direction: maximize}
        budget: {max_trials: \(trials)}
        trial:
          kind: builtin
          workers: \(workers)
          peer_timeout: 1s
          checkpoint: {every_steps: 20}
          train:
            data: {dataset: fashion-mnist, limit: \(rows)}
            model: {kind: mlp, hidden: [\(hidden)], dropout: 0.0}
            training: {epochs: \(epochs), batch_size: 64, optimizer: {name: adam, lr: 0.002}, log_every: 10}
        search:
          method: grid
          parameters:
            lr: {values: [0.001, 0.002, 0.003]}
        """
    }

    /// Waits until the sweep's trial runs in a group that includes `worker` and has a stored
    /// checkpoint past step 20; records an issue and returns false if it never does. The worker
    /// should step slowly (`LocalCluster.slowSteps`, which slows its whole group): at full speed
    /// the trial can end before a delayed checkpoint upload is stored (seen once in CI).
    static func runningWithCheckpoint(_ sweep: String, in cluster: LocalCluster, worker: String) async throws -> Bool {
        let store = try cluster.store
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let s = try store.sweep(named: sweep), let t = try store.trials(sweepID: s.id).first, t.status == .running,
               let c = try store.latestCheckpoint(trialID: t.id), c.step >= 20,
               try store.events(sweepID: s.id, limit: 100).contains(where: { $0.detail.hasPrefix("data-parallel group") && $0.detail.contains("\(worker)-") }) {
                return true
            }
            if let s = try store.sweep(named: sweep), s.status != .running {
                let t = try store.trials(sweepID: s.id).first
                let step = try t.flatMap { try store.latestCheckpoint(trialID: $0.id)?.step }
                Issue.record("\(sweep) finished before \(worker) ran it with a checkpoint: trial \(t.map { "\($0.status) at attempt \($0.attempt), error \($0.error ?? "none")" } ?? "missing"), last checkpoint step \(step.map(String.init) ?? "none")")
                return false
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("\(sweep) never ran on \(worker) with a checkpoint")
        return false
    }

    @Test("every trial runs as a group of 2 ranks on 2 one-slot workers and completes with a sensible objective")
    func groupsComplete() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("a")
        try cluster.addWorker("b")
        try await cluster.submit(Self.sweep("dp2", trials: 3), name: "dp2")
        let sweep = try await cluster.waitForSweep("dp2", timeout: .seconds(240))
        #expect(sweep.status == .completed)
        let store = try cluster.store
        let trials = try store.trials(sweepID: sweep.id)
        #expect(trials.count == 3 && trials.allSatisfy { $0.status == .completed && $0.attempt == 1 })
        for t in trials { #expect((t.objective ?? 0) > 0.7, "trial \(t.number): \(String(describing: t.objective))") }
        let groups = try store.events(sweepID: sweep.id, limit: 500).filter { $0.detail.hasPrefix("data-parallel group of 2") }
        #expect(groups.count == 3, "\(groups.map(\.detail))")
        // Each group spans both workers (one slot each).
        for g in groups { #expect(g.detail.contains("a-") && g.detail.contains("b-"), "\(g.detail)") }
        // Metrics come from rank 0 only: one test_accuracy point per epoch.
        for t in trials { #expect(try store.series(trialID: t.id, name: "test_accuracy", steps: nil).count == 3) }
    }

    @Test("workers advertising different hosts form their group over tcp://, on ports from --group-ports, and it completes")
    func groupAcrossHosts() async throws {
        // 127.0.0.1 and 127.0.0.2 are both this machine, but to the coordinator two hosts: the
        // ring links go over TCP as they would between machines.
        let ports = 20000 + Int.random(in: 0..<100) * 100
        let cluster = try await LocalCluster(coordinatorArguments: ["--group-ports", "\(ports)-\(ports + 99)"])
        defer { cluster.stop() }
        try cluster.addWorker("a", environment: ["SKEIN_ADVERTISE_HOST": "127.0.0.1"])
        try cluster.addWorker("b", environment: ["SKEIN_ADVERTISE_HOST": "127.0.0.2"])
        try await cluster.submit(Self.sweep("dptcp", trials: 1), name: "dptcp")
        let sweep = try await cluster.waitForSweep("dptcp", timeout: .seconds(240))
        #expect(sweep.status == .completed)
        let store = try cluster.store
        let trials = try store.trials(sweepID: sweep.id)
        #expect(trials.count == 1 && trials.allSatisfy { $0.status == .completed && $0.attempt == 1 })
        #expect((trials.first?.objective ?? 0) > 0.7)
        let group = try #require(try store.events(sweepID: sweep.id, limit: 100).first { $0.detail.hasPrefix("data-parallel group of 2") })
        #expect(group.detail.hasPrefix("data-parallel group of 2 over tcp:"), "\(group.detail)")
        // The coordinator's log names the addresses: one rank on each host, inside the range.
        let line = try #require(cluster.coordinator.log.split(separator: "\n").first { $0.contains("data-parallel group of 2 over tcp") })
        for host in ["127.0.0.1", "127.0.0.2"] {
            let port = try #require(line.firstRange(of: "tcp://\(host):").map { Int(line[$0.upperBound...].prefix(5)) } ?? nil)
            #expect((ports...(ports + 99)).contains(port), "\(line)")
        }
    }

    @Test("a group of 4 on 2 hosts, the slots coming interleaved: each host's ranks sit together in the ring, linked by ipc://, the hosts by tcp://; it completes")
    func mixedRing() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        for name in ["a1", "b1", "a2", "b2"] {
            try cluster.addWorker(name, environment: ["SKEIN_ADVERTISE_HOST": name.hasPrefix("a") ? "127.0.0.1" : "127.0.0.2"])
        }
        try await cluster.submit(Self.sweep("dp4", trials: 1, workers: 4), name: "dp4")
        let sweep = try await cluster.waitForSweep("dp4", timeout: .seconds(240))
        #expect(sweep.status == .completed)
        let store = try cluster.store
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.attempt == 1 && (t.objective ?? 0) > 0.7, "\(t)")
        let group = try #require(try store.events(sweepID: sweep.id, limit: 100).first { $0.detail.hasPrefix("data-parallel group of 4") })
        #expect(group.detail.hasPrefix("data-parallel group of 4 over tcp+ipc: "), "\(group.detail)")
        // Ring order: the hosts' workers together ("a a b b" or "b b a a"), whatever order they asked in.
        let hosts = group.detail.split(separator: ": ").last!.split(separator: ", ").map { String($0.prefix(1)) }
        #expect(hosts == ["a", "a", "b", "b"] || hosts == ["b", "b", "a", "a"], "\(group.detail)")
        // Two links within hosts, two across.
        let line = try #require(cluster.coordinator.log.split(separator: "\n").first { $0.contains("data-parallel group of 4 over") })
        #expect(line.matches(of: /ipc:\/\//).count == 2 && line.matches(of: /tcp:\/\//).count == 2, "\(line)")
    }

    @Test("a worker in another network namespace joins over tcp; cutting its link ends its group, which re-forms on the host's workers and completes",
          .enabled(if: NetworkNamespace.available, "needs root for ip netns"))
    func partitionedHost() async throws {
        let ns = try NetworkNamespace(index: 10 + Int.random(in: 0..<200))
        let cluster = try await LocalCluster(listen: "tcp://\(ns.hostAddress):0")
        defer { cluster.stop() }
        try cluster.addWorker("a", environment: ["SKEIN_ADVERTISE_HOST": ns.hostAddress])
        try cluster.addWorker("far", environment: ["SKEIN_ADVERTISE_HOST": ns.address].merging(LocalCluster.slowSteps) { a, _ in a },
                              launcher: ns.launcher)
        try await cluster.submit(Self.sweep("dpnet", trials: 1, epochs: 8), name: "dpnet")
        let store = try cluster.store
        // The only two workers form the group across the link; wait for a checkpoint past step
        // 20, add a worker on the host, then cut the link.
        guard try await Self.runningWithCheckpoint("dpnet", in: cluster, worker: "far") else { return }
        try cluster.addWorker("b", environment: ["SKEIN_ADVERTISE_HOST": ns.hostAddress])
        try ns.setLink(up: false)
        let sweep = try await cluster.waitForSweep("dpnet", timeout: .seconds(240))
        #expect(sweep.status == .completed)
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.attempt >= 2, "attempt \(t.attempt)")
        #expect((t.objective ?? 0) > 0.7)
        #expect(t.logTail?.contains("resumed from checkpoint") == true, "\(t.logTail ?? "")")
        let groups = try store.events(sweepID: sweep.id, limit: 500).filter { $0.detail.hasPrefix("data-parallel group of 2") }
        #expect(groups.first.map { $0.detail.hasPrefix("data-parallel group of 2 over tcp:") && $0.detail.contains("far-") } == true,
                "\(groups.map(\.detail))")
        #expect(groups.last.map { !$0.detail.contains("far-") } == true, "the new group leaves the cut-off worker out: \(groups.map(\.detail))")
    }

    @Test("a group that cannot form (a rank advertises an address nobody reaches) is handed back, then fails after 3 tries saying what to check")
    func groupNeverForms() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("a", environment: ["SKEIN_ADVERTISE_HOST": "127.0.0.1"])
        try cluster.addWorker("b", environment: ["SKEIN_ADVERTISE_HOST": "192.0.2.1"]) // TEST-NET-1: never answers
        try await cluster.submit(Self.sweep("dpun", trials: 1), name: "dpun")
        let sweep = try await cluster.waitForSweep("dpun", timeout: .seconds(120))
        let store = try cluster.store
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .failed && t.attempt == 3, "\(t.status) attempt \(t.attempt)")
        #expect(t.error?.contains("could not form its data-parallel group 3 times in a row") == true, "\(t.error ?? "")")
        #expect(t.error?.contains("--advertise-host") == true && t.error?.contains("--group-ports") == true)
        let unformed = try store.events(sweepID: sweep.id, limit: 200).filter { $0.detail.contains("its data-parallel group did not form") }
        #expect(unformed.count == 2, "\(unformed.map(\.detail))")
    }

    @Test("a bad --group-ports or --advertise-host is refused with a line that names it")
    func badAddressOptions() async throws {
        let c = try ChildProcess("skein", ["coordinator", "--group-ports", "30000-20000", "--run-dir", try TemporaryDirectory.make(prefix: "ports")])
        #expect(try await c.waitForExit() != 0)
        #expect(c.log.contains("--group-ports must be LOW-HIGH"), "\(c.log)")
        let w = try ChildProcess("skein", ["worker", "--advertise-host", "tcp://10.0.0.1:5", "--run-dir", try TemporaryDirectory.make(prefix: "host")])
        #expect(try await w.waitForExit() != 0)
        #expect(w.log.contains("--advertise-host (or SKEIN_ADVERTISE_HOST) must be a host name"), "\(w.log)")
    }

    @Test("kill -9 a worker running a rank: the group's attempt ends, re-forms on the workers left, resumes from its checkpoint and completes",
          arguments: ["ipc", "tcp"])
    func rankKilled(links: String) async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        // tcp: each worker advertises its own loopback address, so the groups span "hosts".
        var host = 0
        func advertise() -> [String: String] {
            host += 1
            return links == "tcp" ? ["SKEIN_ADVERTISE_HOST": "127.0.0.\(host)"] : [:]
        }
        let victim = try cluster.addWorker("victim", environment: advertise().merging(LocalCluster.slowSteps) { a, _ in a })
        try cluster.addWorker("b", environment: advertise())
        try await cluster.submit(Self.sweep("dpk", trials: 1, epochs: 8), name: "dpk")
        let store = try cluster.store
        // The only two workers form the group; wait for a checkpoint past step 20, add a third
        // worker (the replacement), then kill the victim.
        guard try await Self.runningWithCheckpoint("dpk", in: cluster, worker: "victim") else { return }
        try cluster.addWorker("c", environment: advertise())
        victim.kill(SIGKILL)
        let sweep = try await cluster.waitForSweep("dpk", timeout: .seconds(240))
        #expect(sweep.status == .completed)
        let t = try #require(try store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.attempt >= 2, "attempt \(t.attempt)")
        #expect((t.objective ?? 0) > 0.7)
        // The new group started from the stored checkpoint, not from step 0.
        #expect(t.logTail?.contains("resumed from checkpoint") == true, "\(t.logTail ?? "")")
        let events = try store.events(sweepID: sweep.id, limit: 500)
        let groups = events.filter { $0.detail.hasPrefix("data-parallel group of 2") }
        #expect(groups.count >= 2, "re-formed: \(groups.map(\.detail))")
        #expect(groups.last.map { !$0.detail.contains("victim-") } == true, "the new group leaves the dead worker out")
        #expect(groups.allSatisfy { $0.detail.hasPrefix("data-parallel group of 2 over \(links):") }, "\(groups.map(\.detail))")
    }

    @Test("a rank made slower (fault injection: a delay per step) is named as the straggler by skein status")
    func stragglerNamed() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("fast")
        try cluster.addWorker("slow", environment: ["SKEIN_INJECT_STEP_DELAY_MS": "15"])
        try await cluster.submit(Self.sweep("lag", trials: 1, epochs: 40), name: "lag")
        let store = try cluster.store
        // Three epochs of timings, then ask.
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            guard ContinuousClock.now < deadline else { Issue.record("no epoch timings"); return }
            if let s = try store.sweep(named: "lag"), let t = try store.trials(sweepID: s.id).first,
               try store.series(trialID: t.id, name: "wait_seconds.r0", steps: nil).count >= 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try ChildProcess("skein", ["status", "--store", "\(cluster.dir)/skein.sqlite"])
        _ = try await status.waitForExit(timeout: .seconds(30))
        let lines = status.output.filter { $0.contains("is the straggler") }
        let group = try #require(try store.events(sweepID: nil, limit: 200).first { $0.detail.hasPrefix("data-parallel group of 2") })
        // Slots are listed in rank order.
        let members = group.detail.components(separatedBy: ": ").last!.components(separatedBy: ", ")
        let slowRank = try #require(members.firstIndex { $0.hasPrefix("slow-") })
        let t = try #require(try store.trials(sweepID: group.sweepID!).first)
        let waits = try (0..<2).map { r in try store.series(trialID: t.id, name: "wait_seconds.r\(r)", steps: nil).map(\.value) }
        #expect(lines.first?.contains("rank \(slowRank) is the straggler") == true, "\(lines) for group \(members); waits \(waits)")
    }

    @Test("a group wider than the free slots waits, says so in skein status, and starts when a worker joins")
    func groupWaitsForSlots() async throws {
        let cluster = try await LocalCluster()
        defer { cluster.stop() }
        try cluster.addWorker("a")
        try cluster.addWorker("b")
        try await cluster.submit(Self.sweep("wide", trials: 1, workers: 3), name: "wide")
        var forming: [String] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while forming.isEmpty {
            guard ContinuousClock.now < deadline else { Issue.record("status never showed the waiting group"); return }
            try await Task.sleep(for: .milliseconds(200))
            let status = try ChildProcess("skein", ["status", "--coordinator", cluster.address, "--token-file", "\(cluster.dir)/token"])
            _ = try await status.waitForExit(timeout: .seconds(30))
            forming = status.output.filter { $0.contains("waits for a data-parallel group of 3 slots (2 reserved") }
        }
        #expect(try cluster.store.sweep(named: "wide").map { try cluster.store.trials(sweepID: $0.id).isEmpty } == true, "nothing starts on 2 of 3 slots")
        try cluster.addWorker("c")
        let sweep = try await cluster.waitForSweep("wide", timeout: .seconds(120))
        #expect(sweep.status == .completed)
        let t = try #require(try cluster.store.trials(sweepID: sweep.id).first)
        #expect(t.status == .completed && t.attempt == 1)
    }
}
