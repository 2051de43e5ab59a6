import Foundation
import Logging
import SkeinConfig
import SkeinReport
import SkeinSearch
import SkeinStore
import SkeinTransport
import SkeinWire

/// The coordinator's shell: receives control messages and timer ticks, asks the pure parts
/// (`WorkerRegistry`, `Scheduler`) what to do, writes every decision to the run store *before*
/// replying, and answers. One per cluster.
///
/// Store calls are synchronous SQLite transactions (tens of microseconds); they run on the
/// actor's executor.
public actor Coordinator {
    public struct Settings: Sendable {
        public var registry: WorkerRegistry.Settings
        /// How long a recovered attempt waits for its worker to report in after a restart.
        public var adoptionGrace: Double
        /// How long an idle worker waits before asking again.
        public var noWorkRetryMilliseconds: UInt32
        public var codeVersion: String
        /// TCP ports the ranks of groups spanning hosts listen on (see `GroupAddresses`).
        public var groupPorts: ClosedRange<Int>
        /// Times in a row a trial's data-parallel group may fail to form (a rank unreachable)
        /// before that counts as a failed attempt, with an error that says what to check.
        public var maxGroupFormations: Int
        public init(registry: WorkerRegistry.Settings = .init(), adoptionGrace: Double? = nil, noWorkRetryMilliseconds: UInt32 = 50,
                    codeVersion: String = "skein-0.1", groupPorts: ClosedRange<Int> = GroupAddresses.defaultPorts,
                    maxGroupFormations: Int = 3) {
            self.registry = registry
            self.adoptionGrace = adoptionGrace ?? registry.deadAfter
            self.noWorkRetryMilliseconds = noWorkRetryMilliseconds
            self.codeVersion = codeVersion
            self.groupPorts = groupPorts
            self.maxGroupFormations = max(1, maxGroupFormations)
        }
    }

    /// A running attempt as the coordinator tracks it. `worker` is nil for an attempt recovered
    /// from the store after a restart until its worker reports in (or the grace runs out).
    struct Running: Sendable {
        var lease: Lease
        var sweepID: Int64
        var number: Int
        var worker: String?
        var adoptBy: Double
        /// Workers of ranks 1… of a data-parallel trial (`worker` runs rank 0; a worker with
        /// several ranks appears once per rank).
        var members: [String] = []
        /// The TCP ports a group spanning hosts listens on (kept clear of the next groups).
        var ports: [Int] = []
        /// Every worker holding this lease.
        var holders: Set<String> { Set(members + (worker.map { [$0] } ?? [])) }
    }

    /// A data-parallel trial waiting for slots (gang scheduling): the pick it came from and
    /// one worker per slot reserved so far. One at a time, first come first served: the
    /// trials behind it wait too, so a wide group is never starved by narrow ones.
    struct Formation: Sendable {
        var pick: Scheduler.Pick
        var needed: Int
        var slots: [String]
    }

    let store: any RunStore
    let token: [UInt8]
    let settings: Settings
    let log: Logger
    private let now: @Sendable () -> Double
    private(set) var registry: WorkerRegistry
    private(set) var scheduler = Scheduler()
    private var running: [Int64: Running] = [:]
    private var nonces: [[UInt8]: Double] = [:]
    private var clientSessions: Set<String> = []
    private var draining = false
    private var formation: Formation?
    /// Per trial, how many times in a row its group failed to form (see `maxGroupFormations`).
    private var unformed: [Int64: Int] = [:]
    /// Rank assignments of formed groups, waiting for their worker's next work request.
    private var outbox: [String: [Assignment]] = [:]

    public init(store: any RunStore, token: [UInt8], settings: Settings = Settings(), logger: Logger = Logger(label: "skein.coordinator"),
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.store = store
        self.token = token
        self.settings = settings
        self.log = logger
        self.now = now
        registry = WorkerRegistry(settings: settings.registry)
    }

    // MARK: Recovery

    /// Loads every unfinished sweep from the store: its queued trials go back in the queue, its
    /// running attempts wait `adoptionGrace` for their workers to report in.
    public func recover() throws {
        for sweep in try store.sweeps() where sweep.status == .running { try load(sweep) }
        try store.appendEvent(.coordinatorStarted, sweepID: nil, trialID: nil, attempt: nil, workerID: nil, detail: "coordinator started")
    }

    /// Schedules a sweep the store holds: queued trials go back in the queue, running attempts
    /// wait `adoptionGrace` for their workers to report in.
    private func load(_ sweep: SweepRecord) throws {
        let t = now()
        var config: SweepConfig
        do {
            config = try SweepConfig.parse(yaml: sweep.configText, file: "sweep \(sweep.name) (stored config)")
        } catch {
            log.error("cannot resume sweep \(sweep.name): \(error)")
            try store.setSweepStatus(sweep.id, .failed)
            return
        }
        if let n = sweep.maxTrialsOverride { config.budget.maxTrials = n }
        let trials = try store.trials(sweepID: sweep.id)
        var queued: [Int: Int64] = [:]
        var runningCount = 0
        for trial in trials {
            switch trial.status {
            case .queued: queued[trial.number] = trial.id
            case .running:
                runningCount += 1
                if running[trial.id] == nil {
                    running[trial.id] = Running(lease: Lease(trialID: trial.id, attempt: UInt32(trial.attempt)), sweepID: sweep.id,
                                                number: trial.number, worker: nil, adoptBy: t + settings.adoptionGrace)
                }
            default: break
            }
        }
        scheduler.remove(sweep.id)
        scheduler.add(id: sweep.id, config: config, searcher: try config.makeSearcher(), startedAt: sweep.createdAt,
                      created: (trials.map(\.number).max() ?? -1) + 1, queued: queued, running: runningCount)
        try store.appendEvent(.resumed, sweepID: sweep.id, trialID: nil, attempt: nil, workerID: nil,
                              detail: "sweep scheduled from the store: \(trials.count) trials, \(queued.count) queued, \(runningCount) running")
        log.info("resumed sweep \(sweep.name): \(trials.count) trials, \(queued.count) queued, \(runningCount) awaiting their workers")
    }

    /// `skein sweep resume`: schedules a finished or cancelled sweep again (trials not yet run
    /// are created up to its budget); with `retryFailed`, failed trials are queued again.
    public func resume(sweepName: String, retryFailed: Bool) throws -> [String: Any] {
        guard var sweep = try store.sweep(named: sweepName) else { throw StoreError.notFound("sweep \(sweepName)") }
        var retried = 0
        if retryFailed {
            for trial in try store.trials(sweepID: sweep.id) where trial.status == .failed {
                try store.requeueFailed(trialID: trial.id)
                retried += 1
            }
        }
        if sweep.status != .running { try store.setSweepStatus(sweep.id, .running) }
        sweep = try store.sweep(id: sweep.id)!
        try load(sweep)
        try finishSweepIfDone(sweep.id, now: now())
        return ["sweep": sweepName, "retried": retried, "status": try store.sweep(id: sweep.id)!.status.rawValue]
    }

    /// `skein sweep extend`: raises the trial budget and schedules the new trials.
    public func extend(sweepName: String, maxTrials: Int) throws -> [String: Any] {
        guard let sweep = try store.sweep(named: sweepName) else { throw StoreError.notFound("sweep \(sweepName)") }
        try store.setMaxTrials(sweep.id, maxTrials)
        return try resume(sweepName: sweepName, retryFailed: false).merging(["max_trials": maxTrials]) { a, _ in a }
    }

    /// `skein trial retry`: queues one failed trial again.
    public func retry(sweepName: String, trialNumber: Int) throws -> [String: Any] {
        guard let sweep = try store.sweep(named: sweepName) else { throw StoreError.notFound("sweep \(sweepName)") }
        guard let trial = try store.trials(sweepID: sweep.id).first(where: { $0.number == trialNumber }) else {
            throw StoreError.notFound("trial \(trialNumber) of sweep \(sweepName)")
        }
        try store.requeueFailed(trialID: trial.id)
        return try resume(sweepName: sweepName, retryFailed: false).merging(["trial": trialNumber]) { a, _ in a }
    }

    // MARK: Messages

    /// Answers one control message. Never throws: failures become `Refusal`s.
    public func handle(_ message: ControlMessage) -> ControlMessage {
        do {
            return try dispatch(message)
        } catch let e as StoreError {
            log.error("store: \(e)")
            return .refusal(Refusal(.other, "\(e)"))
        } catch {
            log.error("\(error)")
            return .refusal(Refusal(.other, "\(error)"))
        }
    }

    private func dispatch(_ message: ControlMessage) throws -> ControlMessage {
        let t = now()
        switch message {
        case let .hello(h): return try onHello(h, now: t)
        case let .heartbeat(hb): return try onHeartbeat(hb, now: t)
        case let .workRequest(r): return try onWorkRequest(r, now: t)
        case let .metricBatch(b): return try onMetrics(b)
        case let .trialFinished(f): return try onTrialFinished(f, now: t)
        case let .checkpointUpload(u): return try onCheckpoint(u)
        case let .submitSweep(s):
            guard clientSessions.contains(s.session) || registry.isAlive(s.session) else { return .refusal(Refusal(.unknownWorker, "not authenticated")) }
            return try onSubmit(s, now: t)
        case let .query(q):
            guard clientSessions.contains(q.session) || registry.isAlive(q.session) else { return .refusal(Refusal(.unknownWorker, "not authenticated")) }
            return try onQuery(q, now: t)
        default:
            return .refusal(Refusal(.malformed, "unexpected \(message.kind) from a peer"))
        }
    }

    private func onHello(_ h: Hello, now t: Double) throws -> ControlMessage {
        guard h.protocolVersion == Wire.protocolVersion else {
            log.warning("refused \(h.name)@\(h.host): protocol version \(h.protocolVersion), this coordinator speaks \(Wire.protocolVersion)")
            return .refusal(Refusal(.version, "protocol version \(h.protocolVersion) not supported (coordinator speaks \(Wire.protocolVersion))"))
        }
        nonces = nonces.filter { $0.value > t }
        if h.proof.isEmpty {
            let n = Authentication.nonce()
            nonces[n] = t + 30
            return .challenge(Challenge(nonce: n))
        }
        guard nonces.removeValue(forKey: h.nonce) != nil,
              Authentication.verify(proof: h.proof, token: token, nonce: h.nonce, role: h.role, name: h.name) else {
            log.warning("refused \(h.role) \(h.name)@\(h.host): wrong join token (authentication failed)")
            return .refusal(Refusal(.authentication, "authentication failed: wrong join token"))
        }
        let id = "\(h.name)-\(Authentication.nonce().prefix(6).map { String(format: "%02x", $0) }.joined())"
        if h.role == .worker {
            registry.onJoin(id: id, name: h.name, host: h.host, slots: Int(h.slots), now: t)
            try store.upsertWorker(WorkerRecord(id: id, host: h.host, slots: Int(h.slots), joinedAt: t, lastSeen: t, state: .alive))
            try store.appendEvent(.workerJoined, sweepID: nil, trialID: nil, attempt: nil, workerID: id,
                                  detail: "\(h.name)@\(h.host) joined with \(h.slots) slots")
            log.info("worker \(id) joined from \(h.host) with \(h.slots) slots")
        } else {
            clientSessions.insert(id)
        }
        return .welcome(Welcome(workerID: id, heartbeatIntervalMilliseconds: UInt32(settings.registry.heartbeatInterval * 1000)))
    }

    private func onHeartbeat(_ hb: Heartbeat, now t: Double) throws -> ControlMessage {
        guard registry.onSeen(hb.workerID, now: t) else { return .refusal(Refusal(.unknownWorker, "unknown or expired worker \(hb.workerID); join again")) }
        var revoked: [Lease] = []
        for lease in hb.leases {
            guard var r = running[lease.trialID], r.lease == lease else {
                revoked.append(lease)
                continue
            }
            if r.worker == nil {
                // A worker reporting an attempt recovered after a coordinator restart: adopt it.
                r.worker = hb.workerID
                running[lease.trialID] = r
                registry.onLeaseGranted(lease, to: hb.workerID)
                log.info("worker \(hb.workerID) still runs \(lease): adopted")
            } else if !r.holders.contains(hb.workerID) {
                if r.adoptBy.isFinite && groupSize(r.sweepID) > 1 {
                    // Another rank of a recovered data-parallel attempt.
                    r.members.append(hb.workerID)
                    running[lease.trialID] = r
                    registry.onLeaseGranted(lease, to: hb.workerID)
                } else {
                    revoked.append(lease)
                }
            }
        }
        if !revoked.isEmpty { log.info("worker \(hb.workerID) told to stop revoked leases \(revoked)") }
        return .heartbeatAck(HeartbeatAck(revoked: revoked, drain: draining))
    }

    private func onWorkRequest(_ r: WorkRequest, now t: Double) throws -> ControlMessage {
        guard registry.onSeen(r.workerID, now: t) else { return .refusal(Refusal(.unknownWorker, "unknown or expired worker \(r.workerID); join again")) }
        // Results first, in one transaction: they free slots and may finish a sweep.
        try applyResults(r.finished, now: t)
        let retry = NoWork(retryAfterMilliseconds: settings.noWorkRetryMilliseconds)
        if draining || r.freeSlots == 0 { return .noWork(retry) }
        var batch: [Assignment] = []
        var creations: [(sweepID: Int64, trial: NewTrial)] = []
        var free = Int(min(r.freeSlots, 64))
        // Ranks of formed groups waiting for this worker go first.
        if let waiting = outbox[r.workerID], !waiting.isEmpty {
            let n = min(free, waiting.count)
            batch += waiting.prefix(n)
            outbox[r.workerID] = waiting.count > n ? Array(waiting.dropFirst(n)) : nil
            free -= n
        }
        // Slots this worker has reserved for a forming group are not free.
        free -= formation?.slots.filter { $0 == r.workerID }.count ?? 0
        var taken = 0
        // One request fills all of a worker's free slots (one round trip, one transaction).
        picking: while taken < free {
            let pick = scheduler.pick(now: t)
            if case .nothing = pick { break picking }
            if let width = pickWidth(pick), width > 1 {
                if formation?.pick != pick {
                    formation = Formation(pick: pick, needed: width, slots: [])
                    log.info("forming a data-parallel group of \(width) slots for \(pick)")
                }
                let k = min(free - taken, width - formation!.slots.count)
                formation!.slots += Array(repeating: r.workerID, count: k)
                taken += k
                guard formation!.slots.count == width else { break picking } // wait for more slots
                let f = formation!
                formation = nil
                for a in try startGroup(f, now: t) {
                    if a.rankWorker == r.workerID { batch.append(a.assignment) } else { outbox[a.rankWorker, default: []].append(a.assignment) }
                }
                continue picking
            }
            taken += 1
            switch pick {
            case .nothing:
                break picking
            case let .create(sweepID, number, params):
                let sweep = scheduler.sweeps[sweepID]!
                creations.append((sweepID, NewTrial(sweepID: sweepID, number: number, parametersJSON: params.json,
                                                    seed: trialSeed(sweep.config.seed, number))))
                scheduler.onCreatedAndStarted(sweepID: sweepID, number: number)
            case let .startQueued(sweepID, trialID, number):
                _ = try store.startAttempt(trialID: trialID, worker: r.workerID, leaseExpiresAt: t + settings.registry.deadAfter)
                scheduler.onStarted(sweepID: sweepID, number: number)
                let trial = try store.trial(id: trialID)!
                let resume = try store.latestCheckpoint(trialID: trialID)?.contentHash ?? ""
                batch.append(started(trial, sweepID: sweepID, worker: r.workerID, resumeFrom: resume))
            }
        }
        if !creations.isEmpty {
            // Created and started in the store before the worker hears of them.
            let trials = try store.createAndStartTrials(creations.map(\.trial), worker: r.workerID, leaseExpiresAt: t + settings.registry.deadAfter)
            for (trial, c) in zip(trials, creations) { batch.append(started(trial, sweepID: c.sweepID, worker: r.workerID, resumeFrom: "")) }
        }
        return batch.isEmpty ? .noWork(retry) : .assignments(AssignmentBatch(batch))
    }

    /// Bookkeeping once the store holds the started attempt; returns what the worker gets.
    private func started(_ trial: TrialRecord, sweepID: Int64, worker: String, resumeFrom: String) -> Assignment {
        let lease = Lease(trialID: trial.id, attempt: UInt32(trial.attempt))
        running[trial.id] = Running(lease: lease, sweepID: sweepID, number: trial.number, worker: worker, adoptBy: .infinity)
        registry.onLeaseGranted(lease, to: worker)
        let sweep = scheduler.sweeps[sweepID]!
        return Assignment(lease: lease, sweepName: sweep.config.name, trialNumber: UInt32(trial.number), seed: trial.seed,
                          parametersJSON: trial.parametersJSON, trialSpecJSON: sweep.trialSpecJSON, resumeFrom: resumeFrom)
    }

    /// Workers per attempt of a sweep's trials (data parallel when above 1).
    private func groupSize(_ sweepID: Int64) -> Int { scheduler.sweeps[sweepID]?.config.trial.workers ?? 1 }

    private func pickWidth(_ pick: Scheduler.Pick) -> Int? {
        switch pick {
        case let .create(sweepID, _, _), let .startQueued(sweepID, _, _): groupSize(sweepID)
        case .nothing: nil
        }
    }

    /// Starts a data-parallel attempt on the reserved slots: one store transaction, then one
    /// assignment per rank (rank 0 on the first slot reports for the group). The ranks of a
    /// host go round the ring together; a link within a host is ipc://, one between hosts
    /// tcp:// (`GroupAddresses`).
    private func startGroup(_ reserved: Formation, now t: Double) throws -> [(rankWorker: String, assignment: Assignment)] {
        var f = reserved
        f.slots = GroupAddresses.ringOrder(hosts: f.slots.map { registry.workers[$0]?.host ?? "" }).map { reserved.slots[$0] }
        let trial: TrialRecord, sweepID: Int64
        var resume = ""
        switch f.pick {
        case let .create(id, number, params):
            let sweep = scheduler.sweeps[id]!
            trial = try store.createAndStartTrials([NewTrial(sweepID: id, number: number, parametersJSON: params.json,
                                                             seed: trialSeed(sweep.config.seed, number))],
                                                   worker: f.slots[0], leaseExpiresAt: t + settings.registry.deadAfter)[0]
            scheduler.onCreatedAndStarted(sweepID: id, number: number)
            sweepID = id
        case let .startQueued(id, trialID, number):
            _ = try store.startAttempt(trialID: trialID, worker: f.slots[0], leaseExpiresAt: t + settings.registry.deadAfter)
            scheduler.onStarted(sweepID: id, number: number)
            trial = try store.trial(id: trialID)!
            resume = try store.latestCheckpoint(trialID: trialID)?.contentHash ?? ""
            sweepID = id
        case .nothing:
            return []
        }
        let first = started(trial, sweepID: sweepID, worker: f.slots[0], resumeFrom: resume)
        running[trial.id]?.members = Array(f.slots.dropFirst())
        for w in Set(f.slots) { registry.onLeaseGranted(first.lease, to: w) }
        let epoch = UInt64.random(in: 1...UInt64.max)
        let hosts = f.slots.map { registry.workers[$0]?.host ?? "" }
        let taken = Set(running.values.flatMap(\.ports))
        let (addresses, ports) = GroupAddresses.assign(hosts: hosts, epoch: epoch, ports: settings.groupPorts, taken: taken)
        running[trial.id]?.ports = ports
        let peers = addresses.joined(separator: ",")
        let over = GroupAddresses.transports(addresses)
        try store.appendEvent(.leaseGranted, sweepID: sweepID, trialID: trial.id, attempt: trial.attempt, workerID: f.slots[0],
                              detail: "data-parallel group of \(f.slots.count) over \(over): \(f.slots.joined(separator: ", "))")
        log.info("\(first.lease): data-parallel group of \(f.slots.count) over \(over): \(addresses.joined(separator: ", "))")
        return f.slots.enumerated().map { r, w in
            var a = first
            a.rank = UInt32(r); a.world = UInt32(f.slots.count); a.peers = peers; a.groupEpoch = epoch
            return (w, a)
        }
    }

    private func onMetrics(_ b: MetricBatch) throws -> ControlMessage {
        guard let r = running[b.lease.trialID], r.lease == b.lease else {
            return .refusal(Refusal(.staleLease, "\(b.lease) is not current; metrics refused"))
        }
        try store.appendMetrics(rows(b.points, b.lease))
        return .ack(Ack())
    }

    /// Stores a running attempt's checkpoint (content-addressed) so another worker can resume it.
    private func onCheckpoint(_ u: CheckpointUpload) throws -> ControlMessage {
        guard let r = running[u.lease.trialID], r.lease == u.lease else {
            return .refusal(Refusal(.staleLease, "\(u.lease) is not current; checkpoint refused"))
        }
        let c = try store.saveCheckpoint(trialID: u.lease.trialID, attempt: Int(u.lease.attempt), step: u.step, bytes: u.bytes)
        log.debug("checkpoint of \(u.lease) at step \(u.step): \(c.contentHash.prefix(12)) (\(u.bytes.count) bytes)")
        return .ack(Ack())
    }

    private func rows(_ points: [MetricPoint], _ lease: Lease) -> [MetricRow] {
        points.map { MetricRow(trialID: lease.trialID, attempt: Int(lease.attempt), name: $0.name, step: $0.step, value: $0.value, time: $0.time) }
    }

    private func onTrialFinished(_ f: TrialFinished, now t: Double) throws -> ControlMessage {
        guard running[f.lease.trialID]?.lease == f.lease else {
            log.warning("refused a late result for \(f.lease) (lease no longer current)")
            _ = try store.finishAttempts([AttemptEnd(trialID: f.lease.trialID, attempt: Int(f.lease.attempt), outcome: AttemptOutcome(status: .cancelled), metrics: [])])
            return .refusal(Refusal(.staleLease, "\(f.lease) is not current; result refused"))
        }
        try applyResults([f], now: t)
        return .ack(Ack())
    }

    /// Records the ends of attempts: final ones in one transaction (group commit), failures
    /// with retries left and handed-back ones queued again. Results for leases that are not
    /// current are refused (the store logs them) and change nothing.
    private func applyResults(_ results: [TrialFinished], now t: Double) throws {
        guard !results.isEmpty else { return }
        var ends: [AttemptEnd] = []
        var ended: [(Running, requeued: Bool)] = []
        for var f in results {
            guard let r = running[f.lease.trialID], r.lease == f.lease else {
                log.warning("refused a late result for \(f.lease) (lease no longer current)")
                ends.append(AttemptEnd(trialID: f.lease.trialID, attempt: Int(f.lease.attempt), outcome: AttemptOutcome(status: .cancelled), metrics: []))
                continue
            }
            // A group that will not form (an unreachable rank: a firewall, a wrong advertised
            // host) is handed back a few times, then fails like any attempt, saying why.
            let formations = f.outcome == .groupUnformed ? (unformed[f.lease.trialID] ?? 0) + 1 : 0
            unformed[f.lease.trialID] = formations > 0 ? formations : nil
            if formations >= settings.maxGroupFormations {
                unformed[f.lease.trialID] = nil
                f.outcome = .failed
                f.error = "could not form its data-parallel group \(formations) times in a row (last: \(f.error)); check that its "
                    + "workers reach each other at the hosts they advertise (skein worker --advertise-host) on the ports of "
                    + "skein coordinator --group-ports (\(settings.groupPorts.lowerBound)-\(settings.groupPorts.upperBound))"
            }
            let retries = scheduler.sweeps[r.sweepID]?.config.retries ?? 0
            if (f.outcome == .failed && Int(f.lease.attempt) <= retries) || f.outcome == .handedBack || f.outcome == .groupUnformed {
                try store.appendMetrics(rows(f.points, f.lease))
                let why = f.outcome == .handedBack ? "handed back by its worker"
                    : f.outcome == .groupUnformed ? "its data-parallel group did not form (\(formations) of \(settings.maxGroupFormations)): \(f.error)"
                    : "attempt \(f.lease.attempt) failed (exit \(f.exitStatus)): \(f.error); retrying"
                _ = try store.revokeLease(trialID: f.lease.trialID, attempt: Int(f.lease.attempt), reason: why)
                if f.outcome == .failed {
                    try store.recordAttemptError(trialID: f.lease.trialID, error: f.error, logTail: f.logTail)
                    log.info("\(f.lease) failed: \(f.error); queued for retry")
                } else if f.outcome == .groupUnformed {
                    log.warning("\(f.lease): \(why); queued again")
                }
                ended.append((r, true))
                continue
            }
            let status: TrialStatus = switch f.outcome {
            case .completed: .completed
            case .pruned: .pruned
            case .cancelled: .cancelled
            default: .failed
            }
            ends.append(AttemptEnd(trialID: f.lease.trialID, attempt: Int(f.lease.attempt),
                                   outcome: AttemptOutcome(status: status, objective: f.objective.isNaN ? nil : f.objective,
                                                           error: f.error.isEmpty ? nil : f.error, logTail: f.logTail.isEmpty ? nil : f.logTail),
                                   metrics: rows(f.points, f.lease)))
            ended.append((r, false))
        }
        _ = try store.finishAttempts(ends)
        var sweeps: Set<Int64> = []
        for (r, requeued) in ended {
            running[r.lease.trialID] = nil
            for w in r.holders { registry.onLeaseEnded(r.lease, worker: w) }
            scheduler.onAttemptEnded(sweepID: r.sweepID, number: r.number, requeuedTrialID: requeued ? r.lease.trialID : nil)
            sweeps.insert(r.sweepID)
        }
        for id in sweeps { try finishSweepIfDone(id, now: t) }
    }

    // MARK: Sweeps

    private func onSubmit(_ s: SubmitSweep, now t: Double) throws -> ControlMessage {
        let config: SweepConfig
        do {
            config = try SweepConfig.parse(yaml: s.configYAML, file: s.sourcePath)
        } catch {
            return .queryResult(QueryResult(json: jsonObject(["error": error.problems.map(\.description)])))
        }
        let record = try submit(config, yaml: s.configYAML)
        return .queryResult(QueryResult(json: jsonObject(["sweep": record.name, "id": record.id, "trials": config.totalTrials])))
    }

    /// Creates a sweep in the store and starts scheduling it.
    public func submit(_ config: SweepConfig, yaml: String) throws -> SweepRecord {
        let record = try store.createSweep(NewSweep(
            name: config.name, configText: yaml, configHash: Authentication.sha256Hex(Array(yaml.utf8)), seed: config.seed,
            codeVersion: settings.codeVersion, datasetHash: DatasetFingerprint.of(config.trial),
            objectiveMetric: config.objective.metric, direction: config.objective.maximize ? .maximize : .minimize))
        scheduler.add(id: record.id, config: config, searcher: try config.makeSearcher(), startedAt: record.createdAt)
        log.info("sweep \(config.name) submitted: \(config.totalTrials) trials, \(config.method.rawValue) search")
        try finishSweepIfDone(record.id, now: now())
        return record
    }

    /// Cancels a sweep: queued trials are cancelled, running attempts revoked (their workers
    /// are told at their next heartbeat) and recorded as cancelled.
    public func cancel(sweepName: String) throws -> Bool {
        guard let sweep = try store.sweep(named: sweepName), sweep.status == .running else { return false }
        scheduler.onCancelled(sweepID: sweep.id)
        for trial in try store.trials(sweepID: sweep.id) where trial.status == .queued || trial.status == .running {
            if trial.status == .queued {
                try store.cancelQueued(trialID: trial.id, reason: "sweep cancelled")
            } else if let r = running[trial.id] {
                _ = try store.finishAttempt(trialID: trial.id, attempt: Int(r.lease.attempt), outcome: AttemptOutcome(status: .cancelled, error: "sweep cancelled"), metrics: [])
                running[trial.id] = nil
                for w in r.holders { registry.onLeaseEnded(r.lease, worker: w) }
                scheduler.onAttemptEnded(sweepID: sweep.id, number: r.number, requeuedTrialID: nil)
            }
        }
        try store.setSweepStatus(sweep.id, .cancelled)
        scheduler.remove(sweep.id)
        log.info("sweep \(sweepName) cancelled")
        return true
    }

    private func finishSweepIfDone(_ id: Int64, now t: Double) throws {
        let (done, left) = scheduler.completion(of: id, now: t)
        guard done, let s = scheduler.sweeps[id] else { return }
        for trialID in left { try store.cancelQueued(trialID: trialID, reason: "sweep time budget used up") }
        try store.setSweepStatus(id, s.cancelled ? .cancelled : .completed)
        scheduler.remove(id)
        log.info("sweep \(s.config.name) finished")
    }

    // MARK: Time

    /// Advances failure detection and adoption deadlines; call every heartbeat interval or so.
    public func tick() throws {
        let t = now()
        for event in registry.onTick(now: t) {
            switch event {
            case let .suspect(id): log.info("worker \(id) is late (suspect)")
            case .recovered: break
            case let .dead(id, leases):
                log.warning("worker \(id) declared dead (no heartbeat for \(settings.registry.deadAfter)s); revoking \(leases.count) leases")
                try store.upsertWorker(WorkerRecord(id: id, host: registry.workers[id]?.host ?? "", slots: registry.workers[id]?.slots ?? 0,
                                                    joinedAt: registry.workers[id]?.joinedAt ?? t, lastSeen: registry.workers[id]?.lastSeen ?? t, state: .dead))
                try store.appendEvent(.workerDead, sweepID: nil, trialID: nil, attempt: nil, workerID: id, detail: "no heartbeat; \(leases.count) leases revoked")
                for lease in leases { try revoke(lease, reason: "worker \(id) declared dead", now: t) }
                formation?.slots.removeAll { $0 == id }
                outbox[id] = nil
            }
        }
        for r in running.values where r.worker == nil && r.adoptBy < t {
            log.warning("no worker reported \(r.lease) after the restart; revoking it")
            try revoke(r.lease, reason: "no worker reported it after a coordinator restart", now: t)
        }
        for id in scheduler.order { try finishSweepIfDone(id, now: t) }
    }

    private func revoke(_ lease: Lease, reason: String, now t: Double) throws {
        guard let r = running[lease.trialID], r.lease == lease else { return }
        _ = try store.revokeLease(trialID: lease.trialID, attempt: Int(lease.attempt), reason: reason)
        running[lease.trialID] = nil
        // The other ranks of a group hear of it at their next heartbeat and stop; ranks not yet
        // handed out are dropped.
        for w in r.holders { registry.onLeaseEnded(lease, worker: w) }
        for w in Array(outbox.keys) { outbox[w]?.removeAll { $0.lease == lease } }
        scheduler.onAttemptEnded(sweepID: r.sweepID, number: r.number, requeuedTrialID: lease.trialID)
    }

    /// Stops handing out work (SIGTERM): running attempts continue; workers are told to drain.
    public func drain() { draining = true }

    // MARK: Queries

    private func onQuery(_ q: Query, now t: Double) throws -> ControlMessage {
        let result: Any
        switch q.kind {
        case "sweeps":
            result = try store.sweeps().map { ["name": $0.name, "status": $0.status.rawValue, "id": $0.id] as [String: Any] }
        case "status":
            result = try statusJSON(sweepName: q.argument.isEmpty ? nil : q.argument)
        case "workers":
            result = registry.workers.values.sorted { $0.joinedAt < $1.joinedAt }.map {
                ["id": $0.id, "host": $0.host, "slots": $0.slots, "state": $0.state.rawValue, "running": $0.leases.count,
                 "last_seen_seconds_ago": max(0, t - $0.lastSeen)] as [String: Any]
            }
        case "leaderboard":
            let parts = q.argument.split(separator: " ", maxSplits: 1)
            guard let name = parts.first, let sweep = try store.sweep(named: String(name)) else {
                return .refusal(Refusal(.other, "no sweep named '\(q.argument)'"))
            }
            let top = parts.count > 1 ? Int(parts[1]) ?? 10 : 10
            result = try store.leaderboard(sweepID: sweep.id, top: top).map { e in
                ["rank": e.rank, "trial": e.trial.number, "objective": e.trial.objective ?? .nan, "parameters": e.trial.parametersJSON,
                 "attempt": e.trial.attempt, "status": e.trial.status.rawValue] as [String: Any]
            }
        case "cancel":
            result = ["cancelled": try cancel(sweepName: q.argument)]
        case "resume":
            result = try resume(sweepName: q.argument, retryFailed: false)
        case "resume-retry-failed":
            result = try resume(sweepName: q.argument, retryFailed: true)
        case "extend":
            let parts = q.argument.split(separator: " ")
            guard parts.count == 2, let n = Int(parts[1]) else { return .refusal(Refusal(.malformed, "extend needs SWEEP N")) }
            result = try extend(sweepName: String(parts[0]), maxTrials: n)
        case "retry":
            let parts = q.argument.split(separator: " ")
            guard parts.count == 2, let n = Int(parts[1]) else { return .refusal(Refusal(.malformed, "retry needs SWEEP TRIAL")) }
            result = try retry(sweepName: String(parts[0]), trialNumber: n)
        case "checkpoint":
            guard let bytes = try store.checkpointBytes(hash: q.argument) else {
                return .refusal(Refusal(.other, "no checkpoint \(q.argument)"))
            }
            return .checkpointData(CheckpointData(hash: q.argument, bytes: bytes))
        default:
            return .refusal(Refusal(.other, "unknown query '\(q.kind)'"))
        }
        return .queryResult(QueryResult(json: jsonObject(result)))
    }

    func statusJSON(sweepName: String?) throws -> [[String: Any]] {
        let sweeps = try store.sweeps().filter { sweepName == nil || $0.name == sweepName }
        return try sweeps.map { s in
            let sum = try store.summary(sweepID: s.id)
            var o: [String: Any] = ["name": s.name, "status": s.status.rawValue, "objective": s.objectiveMetric, "direction": s.direction.rawValue,
                                    "total": scheduler.sweeps[s.id]?.config.totalTrials ?? sum.total]
            for (k, v) in sum.counts { o[k.rawValue] = v }
            if let best = sum.best { o["best"] = ["trial": best.number, "objective": best.objective ?? .nan, "parameters": best.parametersJSON] as [String: Any] }
            if s.status == .running {
                let lags = try Stragglers.lines(store: store, sweepID: s.id).map { "\(s.name) \($0)" }
                if !lags.isEmpty { o["stragglers"] = lags }
            }
            if let f = formation, let (sweepID, number) = f.pick.trial, sweepID == s.id {
                o["forming"] = "\(s.name) trial \(number) waits for a data-parallel group of \(f.needed) slots "
                    + "(\(f.slots.count) reserved; \(registry.alive.count) live workers)"
            }
            return o
        }
    }

    // MARK: Introspection for tests and the local launcher

    public var liveWorkerCount: Int { registry.alive.count }
    public func runningLeases() -> [Lease] { running.values.map(\.lease) }
    public func activeSweepIDs() -> [Int64] { scheduler.order }
}

/// Trial k's own seed: from the sweep seed and k only.
func trialSeed(_ sweepSeed: UInt64, _ number: Int) -> UInt64 {
    var h = sweepSeed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(number)
    h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
    h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
    return h ^ (h >> 31)
}

func jsonObject(_ value: Any) -> String {
    let clean = sanitize(value)
    guard let data = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) else { return "null" }
    return String(decoding: data, as: UTF8.self)
}

/// JSON has no NaN: such numbers become null.
private func sanitize(_ v: Any) -> Any {
    switch v {
    case let d as Double: return d.isFinite ? d : NSNull()
    case let a as [Any]: return a.map(sanitize)
    case let o as [String: Any]: return o.mapValues(sanitize)
    default: return v
    }
}
