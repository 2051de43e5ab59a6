import Foundation

/// Whether a lower or a higher objective is better.
public enum ObjectiveDirection: String, Codable, Sendable, Equatable {
    case minimize, maximize
}

public enum SweepStatus: String, Codable, Sendable, Equatable {
    case running, completed, cancelled, failed
}

/// A trial's lifecycle. `completed` and `pruned` are final and immutable; `failed` is final
/// unless a person asks for a retry (`requeueFailed`).
public enum TrialStatus: String, Codable, Sendable, Equatable, CaseIterable {
    case queued, running, completed, failed, pruned, cancelled
    public var isFinished: Bool { self == .completed || self == .failed || self == .pruned || self == .cancelled }
}

/// What a sweep is, as submitted.
public struct NewSweep: Sendable, Equatable {
    public var name: String
    public var configText: String
    public var configHash: String
    public var seed: UInt64
    public var codeVersion: String
    public var datasetHash: String
    public var objectiveMetric: String
    public var direction: ObjectiveDirection

    public init(name: String, configText: String, configHash: String, seed: UInt64, codeVersion: String, datasetHash: String,
                objectiveMetric: String, direction: ObjectiveDirection) {
        self.name = name; self.configText = configText; self.configHash = configHash; self.seed = seed
        self.codeVersion = codeVersion; self.datasetHash = datasetHash; self.objectiveMetric = objectiveMetric; self.direction = direction
    }
}

public struct SweepRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var configText: String
    public var configHash: String
    public var seed: UInt64
    public var codeVersion: String
    public var datasetHash: String
    public var objectiveMetric: String
    public var direction: ObjectiveDirection
    public var status: SweepStatus
    public var createdAt: Double
    public var updatedAt: Double
    public var finishedAt: Double?
    /// Opaque searcher state, saved so a restarted coordinator continues the search exactly.
    public var searcherState: Data?
    /// A trial budget set by `skein sweep extend`, replacing the config's `budget.max_trials`.
    public var maxTrialsOverride: Int?
}

/// A trial to create: its number within the sweep, its parameters (JSON object text) and seed.
public struct NewTrial: Sendable, Equatable {
    public var sweepID: Int64
    public var number: Int
    public var parametersJSON: String
    public var seed: UInt64
    public init(sweepID: Int64, number: Int, parametersJSON: String, seed: UInt64) {
        self.sweepID = sweepID; self.number = number; self.parametersJSON = parametersJSON; self.seed = seed
    }
}

public struct TrialRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var sweepID: Int64
    public var number: Int
    public var parametersJSON: String
    public var status: TrialStatus
    /// The current (or last) attempt; 0 before the first start.
    public var attempt: Int
    public var worker: String?
    public var leaseExpiresAt: Double?
    public var seed: UInt64
    public var error: String?
    public var logTail: String?
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var objective: Double?
}

/// One metric observation of a trial attempt.
public struct MetricRow: Sendable, Equatable {
    public var trialID: Int64
    public var attempt: Int
    public var name: String
    public var step: Int64
    public var value: Double
    public var time: Double
    public init(trialID: Int64, attempt: Int, name: String, step: Int64, value: Double, time: Double) {
        self.trialID = trialID; self.attempt = attempt; self.name = name; self.step = step; self.value = value; self.time = time
    }
}

/// A point of a series, as read back.
public struct SeriesPoint: Sendable, Equatable, Codable {
    public var step: Int64
    public var value: Double
    public var time: Double
    public init(step: Int64, value: Double, time: Double) { self.step = step; self.value = value; self.time = time }
}

public struct LeaderboardEntry: Sendable, Equatable {
    public var rank: Int
    public var trial: TrialRecord
}

public struct SweepSummary: Sendable, Equatable {
    public var sweep: SweepRecord
    public var counts: [TrialStatus: Int]
    public var best: TrialRecord?
    public var total: Int { counts.values.reduce(0, +) }
}

public struct CheckpointRecord: Sendable, Equatable {
    public var id: Int64
    public var trialID: Int64
    public var attempt: Int
    public var step: Int64
    public var contentHash: String
    public var size: Int64
    public var path: String
    public var createdAt: Double
}

public struct WorkerRecord: Sendable, Equatable {
    public enum State: String, Sendable, Equatable { case alive, suspect, dead, left }
    public var id: String
    public var host: String
    public var slots: Int
    public var joinedAt: Double
    public var lastSeen: Double
    public var state: State
    public init(id: String, host: String, slots: Int, joinedAt: Double, lastSeen: Double, state: State) {
        self.id = id; self.host = host; self.slots = slots; self.joinedAt = joinedAt; self.lastSeen = lastSeen; self.state = state
    }
}

/// An entry of the append-only event log.
public struct StoreEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case sweepCreated = "sweep_created", sweepFinished = "sweep_finished", workerJoined = "worker_joined",
             workerLeft = "worker_left", workerDead = "worker_dead", leaseGranted = "lease_granted",
             leaseRevoked = "lease_revoked", trialFinished = "trial_finished", trialFailed = "trial_failed",
             resultRefused = "result_refused", coordinatorStarted = "coordinator_started", resumed
    }
    public var id: Int64
    public var time: Double
    public var kind: Kind
    public var sweepID: Int64?
    public var trialID: Int64?
    public var attempt: Int?
    public var workerID: String?
    public var detail: String
}

/// How an attempt ended, as recorded.
public struct AttemptOutcome: Sendable, Equatable {
    public var status: TrialStatus
    public var objective: Double?
    public var error: String?
    public var logTail: String?
    public init(status: TrialStatus, objective: Double? = nil, error: String? = nil, logTail: String? = nil) {
        self.status = status; self.objective = objective; self.error = error; self.logTail = logTail
    }
}

/// One attempt's end, for `finishAttempts`.
public struct AttemptEnd: Sendable, Equatable {
    public var trialID: Int64
    public var attempt: Int
    public var outcome: AttemptOutcome
    public var metrics: [MetricRow]
    public init(trialID: Int64, attempt: Int, outcome: AttemptOutcome, metrics: [MetricRow]) {
        self.trialID = trialID; self.attempt = attempt; self.outcome = outcome; self.metrics = metrics
    }
}
