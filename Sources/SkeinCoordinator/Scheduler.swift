import SkeinConfig
import SkeinSearch

/// Decides which trial attempt a free slot runs next. Pure: the shell persists each decision
/// to the run store, then reports it back with `onCreated`/`onStarted`/`onAttemptEnded`.
///
/// Sweeps are served first-come first-served; within a sweep, queued trials (retries and
/// resumed ones) go before new ones, lowest trial number first. A sweep never runs more than
/// `budget.max_concurrent` trials at once, and starts none after `budget.max_duration`.
public struct Scheduler: Sendable {
    public struct SweepState: Sendable {
        public let id: Int64
        public let config: SweepConfig
        public let searcher: any Searcher
        public let startedAt: Double
        /// The trial spec as sent to workers, encoded once.
        public let trialSpecJSON: String
        /// Trials created so far (numbers 0..<created).
        public var created: Int
        /// Queued trials: number → trial id.
        public var queued: [Int: Int64]
        public var running: Int
        public var cancelled = false
    }

    public enum Pick: Sendable, Equatable {
        case startQueued(sweepID: Int64, trialID: Int64, number: Int)
        case create(sweepID: Int64, number: Int, parameters: ParameterSet)
        case nothing

        /// The sweep and trial number this pick starts, if any.
        public var trial: (sweepID: Int64, number: Int)? {
            switch self {
            case let .startQueued(s, _, n), let .create(s, n, _): (s, n)
            case .nothing: nil
            }
        }
    }

    public private(set) var sweeps: [Int64: SweepState] = [:]
    public private(set) var order: [Int64] = []

    public init() {}

    /// Adds a sweep (new, or recovered from the store with its trials so far).
    public mutating func add(id: Int64, config: SweepConfig, searcher: any Searcher, startedAt: Double,
                             created: Int = 0, queued: [Int: Int64] = [:], running: Int = 0) {
        sweeps[id] = SweepState(id: id, config: config, searcher: searcher, startedAt: startedAt, trialSpecJSON: config.trial.json,
                                created: created, queued: queued, running: running)
        order.append(id)
    }

    public mutating func remove(_ id: Int64) {
        sweeps[id] = nil
        order.removeAll { $0 == id }
    }

    func pastDeadline(_ s: SweepState, _ now: Double) -> Bool {
        s.config.budget.maxDurationSeconds.map { now - s.startedAt >= $0 } ?? false
    }

    /// The next attempt to start, if any sweep has work a slot may take now.
    public func pick(now: Double) -> Pick {
        for id in order {
            guard let s = sweeps[id], !s.cancelled, !pastDeadline(s, now) else { continue }
            if let limit = s.config.budget.maxConcurrent, s.running >= limit { continue }
            if let number = s.queued.keys.min() { return .startQueued(sweepID: id, trialID: s.queued[number]!, number: number) }
            if s.created < s.config.totalTrials, let params = s.searcher.suggest(trialNumber: s.created) {
                return .create(sweepID: id, number: s.created, parameters: params)
            }
        }
        return .nothing
    }

    public mutating func onCreated(sweepID: Int64, trialID: Int64, number: Int) {
        let created = max(sweeps[sweepID]?.created ?? 0, number + 1)
        sweeps[sweepID]?.created = created
        sweeps[sweepID]?.queued[number] = trialID
    }

    /// A new trial was created and started at once (the common case, one transaction).
    public mutating func onCreatedAndStarted(sweepID: Int64, number: Int) {
        let created = max(sweeps[sweepID]?.created ?? 0, number + 1)
        sweeps[sweepID]?.created = created
        sweeps[sweepID]?.running += 1
    }

    public mutating func onStarted(sweepID: Int64, number: Int) {
        sweeps[sweepID]?.queued[number] = nil
        sweeps[sweepID]?.running += 1
    }

    /// An attempt ended: finished for good, or queued again (`requeuedTrialID`) after a
    /// failure with retries left or a revoked lease.
    public mutating func onAttemptEnded(sweepID: Int64, number: Int, requeuedTrialID: Int64?) {
        sweeps[sweepID]?.running -= 1
        if let t = requeuedTrialID { sweeps[sweepID]?.queued[number] = t }
    }

    public mutating func onCancelled(sweepID: Int64) {
        sweeps[sweepID]?.cancelled = true
        sweeps[sweepID]?.queued = [:]
    }

    /// Whether a sweep has nothing left to run: all its trials created and finished, or its
    /// time is up (or it was cancelled) and nothing is running. Queued trials left behind by a
    /// deadline are returned so the shell can cancel them.
    public func completion(of id: Int64, now: Double) -> (done: Bool, leftQueued: [Int64]) {
        guard let s = sweeps[id] else { return (false, []) }
        if s.running > 0 { return (false, []) }
        if s.cancelled || pastDeadline(s, now) { return (true, Array(s.queued.values)) }
        let exhausted = s.created >= s.config.totalTrials || s.searcher.suggest(trialNumber: s.created) == nil
        return (exhausted && s.queued.isEmpty, [])
    }
}
