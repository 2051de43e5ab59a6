import Foundation
import Logging
import SkeinTransport
import SkeinWire
import Synchronization

/// A worker process's runtime: joins a coordinator, keeps its heartbeat, runs one trial per
/// slot, streams metrics, and reports results. Reconnects by itself when the coordinator goes
/// away and comes back, reporting the attempts it still runs so nothing is lost.
public final class Worker: Sendable {
    public struct Settings: Sendable {
        public var joinAddress: String
        public var tls: TLSConfiguration?
        public var token: [UInt8]
        public var name: String
        public var host: String
        public var slots: Int
        public var workDirectory: String
        public init(joinAddress: String, tls: TLSConfiguration? = nil, token: [UInt8], name: String, host: String, slots: Int,
                    workDirectory: String) {
            self.joinAddress = joinAddress; self.tls = tls; self.token = token; self.name = name; self.host = host
            self.slots = slots; self.workDirectory = workDirectory
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case authentication(String)
        public var description: String {
            switch self { case let .authentication(d): "the coordinator refused this worker: \(d)" }
        }
    }

    let settings: Settings
    let client: ControlClient
    let log: Logger
    let runner: TrialRunner
    private let session = Mutex<(id: String?, interval: Double)>((nil, 0.5))
    /// Running attempts by lease and rank (the ranks of one data-parallel trial share a lease).
    private let active = Mutex<[RankedLease: StopFlag]>([:])
    /// Results not yet acknowledged by the coordinator; sent with the next work request.
    private let results = Mutex<[TrialFinished]>([])
    /// Wakes the dispatcher when an attempt ends.
    private let attemptEnded = Doorbell()
    private let draining = Atomic<Bool>(false)

    public init(settings: Settings, logger: Logger = Logger(label: "skein.worker")) throws {
        self.settings = settings
        self.log = logger
        client = try ControlClient(address: settings.joinAddress, tls: settings.tls,
                                   options: Socket.Options(reconnectMin: .milliseconds(20), reconnectMax: .milliseconds(500)))
        runner = TrialRunner(workDirectory: settings.workDirectory)
    }

    /// Stop taking work; running trials stop and are handed back.
    public func drain() {
        draining.store(true, ordering: .relaxed)
        for flag in active.withLock({ Array($0.values) }) { flag.stop(.draining) }
    }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }
    public var runningLeases: [Lease] { active.withLock { Array(Set($0.keys.map(\.lease))) } }

    /// Runs until drained (all slots idle) or cancelled. Throws only on a wrong token.
    public func run() async throws {
        _ = try await sessionID()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.heartbeatLoop() }
            group.addTask { try await self.tick() }
            group.addTask { try await self.dispatchLoop() }
            do {
                // The dispatcher returns once drained and idle; then stop the heartbeat.
                _ = try await group.next()
                group.cancelAll()
                while let _ = try await group.next() {}
            } catch is CancellationError {
            }
        }
        client.close()
    }

    /// The current session id, joining (or re-joining) as needed.
    func sessionID() async throws -> String {
        if let id = session.withLock({ $0.id }) { return id }
        var delay = 0.05
        while true {
            try Task.checkCancellation()
            do {
                let w = try await client.authenticate(token: settings.token, role: .worker, name: settings.name, host: settings.host,
                                                      slots: settings.slots, timeout: .seconds(5))
                session.withLock { $0 = (w.workerID, Double(w.heartbeatIntervalMilliseconds) / 1000) }
                log.info("joined \(settings.joinAddress) as \(w.workerID)")
                return w.workerID
            } catch let ControlError.refused(reason, detail) where reason == .authentication || reason == .version {
                log.error("refused by the coordinator: \(detail)")
                throw Failure.authentication(detail)
            } catch {
                log.debug("cannot join yet: \(error)")
                try await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 1)
            }
        }
    }

    func forget(_ id: String) {
        session.withLock { if $0.id == id { $0.id = nil } }
    }

    func heartbeatLoop() async throws {
        while !Task.isCancelled {
            let interval = session.withLock { $0.interval }
            let id = try await sessionID()
            let leases = runningLeases
            do {
                let reply = try await client.call(.heartbeat(Heartbeat(workerID: id, freeSlots: UInt32(max(settings.slots - leases.count, 0)),
                                                                     leases: leases)), timeout: .seconds(max(interval * 4, 1)))
                if case let .heartbeatAck(ack) = reply {
                    for lease in ack.revoked {
                        log.warning("\(lease) was revoked by the coordinator: stopping it")
                        for flag in active.withLock({ a in a.filter { $0.key.lease == lease }.map(\.value) }) { flag.stop(.revoked) }
                    }
                    if ack.drain && !isDraining { log.info("coordinator asked to drain"); drain() }
                }
            } catch ControlError.refused(.unknownWorker, _) {
                forget(id)
            } catch {
                log.debug("heartbeat: \(error)")
            }
            try await Task.sleep(for: .seconds(interval))
        }
    }

    /// Asks for work whenever slots are free (one request fills them all, and carries the
    /// results of attempts that ended meanwhile) and runs each attempt as a child task.
    func dispatchLoop() async throws {
        try await withThrowingDiscardingTaskGroup { attempts in
            var backoff = 0.05
            var idleUntil: ContinuousClock.Instant?
            while true {
                try Task.checkCancellation()
                let pending = results.withLock { $0 }
                let running = active.withLock { $0.count }
                if isDraining && running == 0 && pending.isEmpty { break }
                let free = isDraining ? 0 : settings.slots - running
                let wantWork = free > 0 && (idleUntil.map { ContinuousClock.now >= $0 } ?? true)
                if pending.isEmpty && !wantWork {
                    // Slots busy, or nothing to run until the retry time: wait for an attempt to end
                    // or the next tick, then look again.
                    await attemptEnded.wait()
                    continue
                }
                let id = try await sessionID()
                do {
                    let request = WorkRequest(workerID: id, freeSlots: UInt32(wantWork ? free : 0), finished: pending)
                    let reply = try await client.call(.workRequest(request), timeout: .seconds(10))
                    backoff = 0.05
                    // The reply means the results are stored.
                    results.withLock { r in r.removeFirst(min(pending.count, r.count)) }
                    for f in pending { log.info("\(f.lease) \(f.outcome) objective \(f.objective)") }
                    switch reply {
                    case let .assignments(batch):
                        idleUntil = nil
                        for a in batch.assignments {
                            let stop = StopFlag()
                            active.withLock { $0[RankedLease(lease: a.lease, rank: a.rank)] = stop }
                            attempts.addTask { await self.runAttempt(a, stop: stop) }
                        }
                    case let .noWork(n):
                        if wantWork { idleUntil = ContinuousClock.now + .milliseconds(Int(n.retryAfterMilliseconds)) }
                    default:
                        log.warning("unexpected reply to a work request: \(reply.kind)")
                    }
                } catch ControlError.refused(.unknownWorker, _) {
                    forget(id)
                } catch let e as ControlError {
                    log.debug("work request: \(e)")
                    try await Task.sleep(for: .seconds(backoff))
                    backoff = min(backoff * 2, 1)
                }
            }
        }
    }

    func runAttempt(_ a: Assignment, stop: StopFlag) async {
        if isDraining { stop.stop(.draining) }
        let metrics = MetricBuffer()
        let checkpoints = CheckpointOutbox()
        log.info("running \(a.sweepName) trial \(a.trialNumber) (\(a.lease)) \(a.parametersJSON)")
        let resume = a.resumeFrom.isEmpty ? nil : await fetchCheckpoint(a.resumeFrom)
        let result: TrialResult = await withTaskGroup(of: TrialResult?.self) { group in
            group.addTask { await self.runner.run(a, metrics: metrics, stop: stop, checkpoints: checkpoints, resume: resume) }
            group.addTask {
                // Flush metrics and checkpoints while the trial runs; a refusal means the lease is gone.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    if Task.isCancelled { break }
                    if !(await self.flush(metrics, a.lease, keep: 0)) { stop.stop(.revoked) }
                    if !(await self.upload(checkpoints, a.lease)) { stop.stop(.revoked) }
                }
                return nil
            }
            let r = await group.next()!!
            group.cancelAll()
            return r
        }
        // A final checkpoint (handing back) must be stored before the trial is handed back.
        _ = await upload(checkpoints, a.lease)
        // What is left beyond one message's worth goes first; the rest rides on the result.
        _ = await flush(metrics, a.lease, keep: Self.pointsWithResult)
        var tail = result.logTail
        if metrics.dropped > 0 { tail += "\n[skein: \(metrics.dropped) metric points dropped: buffer full]" }
        let finished = TrialFinished(lease: a.lease, outcome: result.outcome, objective: result.objective, exitStatus: result.exitStatus,
                                     error: result.error, logTail: tail, points: metrics.take(max: Self.pointsWithResult))
        // The result goes out with the next work request, which the dispatcher sends now. Only
        // rank 0 of a data-parallel trial reports; the other ranks just free their slots.
        if a.rank == 0 { results.withLock { $0.append(finished) } }
        active.withLock { $0[RankedLease(lease: a.lease, rank: a.rank)] = nil }
        attemptEnded.ring()
    }

    /// Rings the dispatcher's doorbell every 25 ms, so it can wait for "an attempt ended or
    /// some time passed" without a timer per wait (creating and cancelling thousands of sleeps
    /// per second crashed libdispatch's timer loop here).
    func tick() async throws {
        while true {
            try await Task.sleep(for: .milliseconds(25))
            attemptEnded.ring()
        }
    }

    /// Metric points sent inside the final result message.
    static let pointsWithResult = 1_000

    /// Uploads the pending checkpoint, if any; false if the coordinator refused it (stale lease).
    func upload(_ outbox: CheckpointOutbox, _ lease: Lease) async -> Bool {
        guard let c = outbox.take() else { return true }
        do {
            _ = try await client.call(.checkpointUpload(CheckpointUpload(lease: lease, step: c.step, bytes: c.bytes)), timeout: .seconds(30))
            log.debug("\(lease): checkpoint at step \(c.step) stored")
            return true
        } catch ControlError.refused(.staleLease, _) {
            return false
        } catch {
            log.warning("\(lease): checkpoint at step \(c.step) not stored: \(error)")
            return true
        }
    }

    /// The bytes of a stored checkpoint; nil (start from step 0) if it cannot be had.
    func fetchCheckpoint(_ hash: String) async -> [UInt8]? {
        for _ in 0..<5 {
            do {
                let id = try await sessionID()
                let reply = try await client.call(.query(Query(session: id, kind: "checkpoint", argument: hash)), timeout: .seconds(30))
                if case let .checkpointData(d) = reply { return d.bytes }
            } catch {
                log.warning("fetching checkpoint \(hash.prefix(12)): \(error)")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        log.warning("checkpoint \(hash.prefix(12)) unavailable: starting the trial from step 0")
        return nil
    }

    /// Sends buffered metrics; false if the coordinator refused them (stale lease).
    func flush(_ metrics: MetricBuffer, _ lease: Lease, keep: Int) async -> Bool {
        while metrics.count > keep {
            let batch = metrics.take(max: min(5_000, metrics.count - keep))
            do {
                _ = try await client.call(.metricBatch(MetricBatch(lease: lease, points: batch)), timeout: .seconds(5))
            } catch ControlError.refused(.staleLease, _) {
                return false
            } catch {
                // Coordinator away: these points are lost (bounded memory); training goes on.
                log.debug("metrics: \(error)")
                return true
            }
        }
        return true
    }
}

/// A wake-up signal for one waiter. A ring with nobody waiting is remembered until the next
/// wait. (An AsyncStream would not do: cancelling a task blocked in its `next()` ends the
/// stream for good, and every later wait would return at once: a busy loop.)
final class Doorbell: Sendable {
    private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else { s.rung = true; return nil }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Returns at the next ring (or at once if one is pending), or when the task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.rung || Task.isCancelled { s.rung = false; return true }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}

/// One slot's attempt: the lease, and the rank within its data-parallel group (0 otherwise).
struct RankedLease: Hashable, Sendable {
    let lease: Lease
    let rank: UInt32
}
