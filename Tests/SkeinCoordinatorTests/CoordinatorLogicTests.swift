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
