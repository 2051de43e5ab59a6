import Testing
@testable import SkeinCoordinator
@testable import SkeinConfig
@testable import SkeinSearch
import SkeinWire

@Suite("Failure detector and scheduler")
struct CoordinatorLogicTests {
    @Test("heartbeats keep a worker alive; silence makes it suspect, then dead with its leases")
    func failureDetector() {
        var r = WorkerRegistry(settings: .init(heartbeatInterval: 0.5))
        r.onJoin(id: "a", name: "a", host: "h", slots: 1, now: 0)
        r.onJoin(id: "b", name: "b", host: "h", slots: 1, now: 0)
        r.onLeaseGranted(Lease(trialID: 1, attempt: 1), to: "a")
        var t = 0.0
        while t < 3 {
            t += 0.25
            r.onSeen("b", now: t)
            let events = r.onTick(now: t)
            if t == 1.25 { #expect(events == [.suspect("a")]) }
            if t == 2.25 { #expect(events == [.dead("a", leases: [Lease(trialID: 1, attempt: 1)])]) }
            if t != 1.25 && t != 2.25 { #expect(events.isEmpty, "t=\(t): \(events)") }
        }
        #expect(!r.isAlive("a") && r.isAlive("b"))
        #expect(r.onSeen("a", now: 3) == false) // the dead must join again
    }

    func config(maxTrials: Int, maxConcurrent: Int? = nil, duration: Double? = nil) -> SweepConfig {
        SweepConfig(name: "s", seed: 1, objective: .init(metric: "loss", maximize: false),
                    budget: .init(maxTrials: maxTrials, maxConcurrent: maxConcurrent, maxDurationSeconds: duration), retries: 0,
                    trial: TrialSpec(kind: .noop), method: .random, space: SearchSpace([("x", .uniform(low: 0, high: 1))]))
    }

    @Test("the scheduler creates trials up to the budget, honours max_concurrent, and prefers queued retries")
    func scheduler() throws {
        var s = Scheduler()
        let c = config(maxTrials: 3, maxConcurrent: 2)
        s.add(id: 1, config: c, searcher: try c.makeSearcher(), startedAt: 0)
        guard case let .create(_, n0, p0) = s.pick(now: 1) else { Issue.record("expected create"); return }
        #expect(try n0 == 0 && p0 == c.makeSearcher().suggest(trialNumber: 0))
        s.onCreated(sweepID: 1, trialID: 10, number: 0); s.onStarted(sweepID: 1, number: 0)
        guard case .create(_, 1, _) = s.pick(now: 1) else { Issue.record("expected trial 1"); return }
        s.onCreated(sweepID: 1, trialID: 11, number: 1); s.onStarted(sweepID: 1, number: 1)
        #expect(s.pick(now: 1) == .nothing) // max_concurrent 2
        s.onAttemptEnded(sweepID: 1, number: 0, requeuedTrialID: 10) // failed, retry
        #expect(s.pick(now: 1) == .startQueued(sweepID: 1, trialID: 10, number: 0))
        s.onStarted(sweepID: 1, number: 0)
        s.onAttemptEnded(sweepID: 1, number: 0, requeuedTrialID: nil)
        s.onAttemptEnded(sweepID: 1, number: 1, requeuedTrialID: nil)
        #expect(s.completion(of: 1, now: 1).done == false) // trial 2 not yet created
        guard case .create(_, 2, _) = s.pick(now: 1) else { Issue.record("expected trial 2"); return }
        s.onCreated(sweepID: 1, trialID: 12, number: 2); s.onStarted(sweepID: 1, number: 2)
        s.onAttemptEnded(sweepID: 1, number: 2, requeuedTrialID: nil)
        #expect(s.pick(now: 1) == .nothing)
        #expect(s.completion(of: 1, now: 1).done)
    }

    @Test("after max_duration nothing new starts; queued trials are left for cancellation")
    func deadline() throws {
        var s = Scheduler()
        let c = config(maxTrials: 10, duration: 5)
        s.add(id: 1, config: c, searcher: try c.makeSearcher(), startedAt: 100)
        s.onCreated(sweepID: 1, trialID: 7, number: 0)
        #expect(s.pick(now: 106) == .nothing)
        let (done, left) = s.completion(of: 1, now: 106)
        #expect(done && left == [7])
    }
}

@Suite("Group addresses")
struct GroupAddressesTests {
    @Test("ranks all on one host get ipc:// paths named by the epoch, and hold no TCP port")
    func oneHost() {
        let (peers, ports) = GroupAddresses.assign(hosts: ["h", "h", "h"], epoch: 255, ports: 20000...20063, taken: [])
        #expect(peers == (0..<3).map { "ipc:///tmp/skein-group-ff-\($0).ipc" })
        #expect(ports.isEmpty)
    }

    @Test("ranks on several hosts: a link within a host is ipc://, one from another host tcp:// on a port inside the range, each distinct and clear of the ports other groups hold")
    func severalHosts() {
        let range = 20000...20063
        // Epoch 64 starts rank 0 at 20000. Rank 1 listens for rank 0, on its host: ipc://.
        let (peers, ports) = GroupAddresses.assign(hosts: ["a", "a", "b"], epoch: 64, ports: range, taken: [])
        #expect(peers == ["tcp://a:20000", "ipc:///tmp/skein-group-40-1.ipc", "tcp://b:20002"])
        #expect(ports == [20000, 20002])
        #expect(GroupAddresses.transports(peers) == "tcp+ipc")
        // Two hosts, one rank each: both links cross.
        let pair = GroupAddresses.assign(hosts: ["a", "b"], epoch: 64, ports: range, taken: [])
        #expect(pair.peers == ["tcp://a:20000", "tcp://b:20001"] && GroupAddresses.transports(pair.peers) == "tcp")
        #expect(GroupAddresses.transports(GroupAddresses.assign(hosts: ["h", "h"], epoch: 1, ports: range, taken: []).peers) == "ipc")
        // Another group with the same start, while the first runs, moves past its ports (on
        // any host: ranks listen on every interface, and two advertised hosts may be one machine).
        let next = GroupAddresses.assign(hosts: ["c", "b"], epoch: 64, ports: range, taken: Set(ports))
        #expect(next.peers == ["tcp://c:20001", "tcp://b:20003"])
        // The search wraps around the end of the range.
        let wrapped = GroupAddresses.assign(hosts: ["a", "b"], epoch: 63, ports: range, taken: [20063, 20000])
        #expect(wrapped.peers == ["tcp://a:20001", "tcp://b:20002"])
        // Any epoch: every port in range, no two ranks on one port (hosts alternating: every link crosses).
        for epoch in [UInt64.max, 1, 12345, 1 << 40] {
            let g = GroupAddresses.assign(hosts: ["x", "y", "x", "y"], epoch: epoch, ports: range, taken: Set(ports))
            #expect(g.ports.allSatisfy { range.contains($0) && !ports.contains($0) } && Set(g.ports).count == 4)
        }
        // An IPv6 literal is bracketed in the URL.
        #expect(GroupAddresses.assign(hosts: ["::1", "10.0.0.2"], epoch: 64, ports: range, taken: []).peers
                == ["tcp://[::1]:20000", "tcp://10.0.0.2:20001"])
    }

    @Test("the ring takes a host's ranks together, hosts in order of first appearance, the first rank first")
    func ringOrder() {
        #expect(GroupAddresses.ringOrder(hosts: ["a", "b", "a", "b"]) == [0, 2, 1, 3])
        #expect(GroupAddresses.ringOrder(hosts: ["b", "a", "c", "a", "b"]) == [0, 4, 1, 3, 2])
        #expect(GroupAddresses.ringOrder(hosts: ["a", "a", "b"]) == [0, 1, 2])
        #expect(GroupAddresses.ringOrder(hosts: []) == [])
        // 2 hosts × 2 ranks, interleaved as the slots came: after ordering, two links within
        // hosts (ipc://) and two across (tcp://), not four across.
        let hosts = ["a", "b", "a", "b"]
        let ordered = GroupAddresses.ringOrder(hosts: hosts).map { hosts[$0] }
        let g = GroupAddresses.assign(hosts: ordered, epoch: 9, ports: 20000...20063, taken: [])
        #expect(g.peers.filter { $0.hasPrefix("ipc://") }.count == 2 && g.ports.count == 2)
    }

    @Test("--group-ports parses LOW-HIGH and refuses privileged, inverted, out-of-range and tiny ranges")
    func parsePorts() {
        #expect(GroupAddresses.parsePorts("20000-32767") == 20000...32767)
        #expect(GroupAddresses.defaultPorts.upperBound < 32768) // below Linux's ephemeral ports
        for bad in ["", "20000", "20000-", "-20000", "80-1000", "30000-20000", "60000-70000", "20000-20010", "a-b", "1-2-3"] {
            #expect(GroupAddresses.parsePorts(bad) == nil, "\(bad)")
        }
    }
}
