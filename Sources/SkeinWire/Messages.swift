/// A trial attempt's lease: results are accepted only for the current one (fencing).
public struct Lease: WireCodable, Hashable, CustomStringConvertible {
    public var trialID: Int64
    public var attempt: UInt32
    public init(trialID: Int64, attempt: UInt32) { self.trialID = trialID; self.attempt = attempt }
    public static let minimumEncodedSize = 12
    public func encode(to w: inout ByteWriter) { w.write(trialID); w.write(attempt) }
    public init(from r: inout ByteReader) throws(WireError) {
        trialID = try r.read("lease.trialID")
        attempt = try r.read("lease.attempt")
    }
    public var description: String { "trial \(trialID) attempt \(attempt)" }
}

/// Who is speaking in a handshake.
public enum Role: UInt8, Sendable, Equatable {
    case worker = 1, client = 2, peer = 3
}

/// Opens every session. The first hello carries no proof; the coordinator answers with a
/// `Challenge`, and the second hello carries `proof` = HMAC(join token, nonce ‖ role ‖ name).
public struct Hello: WireCodable {
    public var protocolVersion: UInt8
    public var role: Role
    public var name: String
    public var host: String
    public var slots: UInt32
    /// The challenge nonce this proof answers (empty on the first hello).
    public var nonce: [UInt8]
    /// Authentication proof; the join token itself never crosses the wire.
    public var proof: [UInt8]
    public init(protocolVersion: UInt8 = Wire.protocolVersion, role: Role, name: String, host: String, slots: UInt32,
                nonce: [UInt8] = [], proof: [UInt8] = []) {
        self.protocolVersion = protocolVersion; self.role = role; self.name = name; self.host = host
        self.slots = slots; self.nonce = nonce; self.proof = proof
    }
    public static let minimumEncodedSize = 2 + 4 + 4 + 4 + 4 + 4
    public func encode(to w: inout ByteWriter) {
        w.write(protocolVersion); w.write(role.rawValue); w.write(name); w.write(host); w.write(slots)
        w.write(nonce); w.write(proof)
    }
    public init(from r: inout ByteReader) throws(WireError) {
        protocolVersion = try r.read("hello.protocolVersion")
        let rawRole: UInt8 = try r.read("hello.role")
        guard let role = Role(rawValue: rawRole) else { throw .invalidValue(field: "hello.role", value: UInt64(rawRole)) }
        self.role = role
        name = try r.readString("hello.name")
        host = try r.readString("hello.host")
        slots = try r.read("hello.slots")
        nonce = try r.readBytes("hello.nonce")
        proof = try r.readBytes("hello.proof")
    }
}

/// The coordinator's answer to an unproven hello: prove you know the token for this nonce.
public struct Challenge: WireCodable {
    public var nonce: [UInt8]
    public init(nonce: [UInt8]) { self.nonce = nonce }
    public static let minimumEncodedSize = 4
    public func encode(to w: inout ByteWriter) { w.write(nonce) }
    public init(from r: inout ByteReader) throws(WireError) { nonce = try r.readBytes("challenge.nonce") }
}

/// Accepted: the worker's identity and the heartbeat interval it must keep.
public struct Welcome: WireCodable {
    public var workerID: String
    public var heartbeatIntervalMilliseconds: UInt32
    public init(workerID: String, heartbeatIntervalMilliseconds: UInt32) {
        self.workerID = workerID; self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
    }
    public static let minimumEncodedSize = 8
    public func encode(to w: inout ByteWriter) { w.write(workerID); w.write(heartbeatIntervalMilliseconds) }
    public init(from r: inout ByteReader) throws(WireError) {
        workerID = try r.readString("welcome.workerID")
        heartbeatIntervalMilliseconds = try r.read("welcome.heartbeatIntervalMilliseconds")
    }
}

/// A request refused, with a reason for the log on both sides.
public struct Refusal: WireCodable {
    public enum Reason: UInt8, Sendable { case authentication = 1, version = 2, staleLease = 3, unknownWorker = 4, malformed = 5, other = 6 }
    public var reason: Reason
    public var detail: String
    public init(_ reason: Reason, _ detail: String) { self.reason = reason; self.detail = detail }
    public static let minimumEncodedSize = 5
    public func encode(to w: inout ByteWriter) { w.write(reason.rawValue); w.write(detail) }
    public init(from r: inout ByteReader) throws(WireError) {
        let raw: UInt8 = try r.read("refusal.reason")
        guard let reason = Reason(rawValue: raw) else { throw .invalidValue(field: "refusal.reason", value: UInt64(raw)) }
        self.reason = reason
        detail = try r.readString("refusal.detail")
    }
}

/// A worker's periodic liveness report with the leases it holds.
public struct Heartbeat: WireCodable {
    public var workerID: String
    public var freeSlots: UInt32
    public var leases: [Lease]
    public init(workerID: String, freeSlots: UInt32, leases: [Lease]) {
        self.workerID = workerID; self.freeSlots = freeSlots; self.leases = leases
    }
    public static let minimumEncodedSize = 12
    public func encode(to w: inout ByteWriter) { w.write(workerID); w.write(freeSlots); w.write(leases) }
    public init(from r: inout ByteReader) throws(WireError) {
        workerID = try r.readString("heartbeat.workerID")
        freeSlots = try r.read("heartbeat.freeSlots")
        leases = try r.readArray(of: Lease.self, "heartbeat.leases")
    }
}

/// The coordinator's answer to a heartbeat: leases the worker must stop (fencing).
public struct HeartbeatAck: WireCodable {
    public var revoked: [Lease]
    public var drain: Bool
    public init(revoked: [Lease], drain: Bool = false) { self.revoked = revoked; self.drain = drain }
    public static let minimumEncodedSize = 5
    public func encode(to w: inout ByteWriter) { w.write(revoked); w.write(drain) }
    public init(from r: inout ByteReader) throws(WireError) {
        revoked = try r.readArray(of: Lease.self, "heartbeatAck.revoked")
        drain = try r.readBool("heartbeatAck.drain")
    }
}

/// A worker asks for up to `freeSlots` trial attempts and hands in the results of attempts
/// that ended since its last request. The reply (assignments or no work) means the results
/// are in the run store; until then the worker keeps them and sends them again.
public struct WorkRequest: WireCodable {
    public var workerID: String
    public var freeSlots: UInt32
    public var finished: [TrialFinished]
    public init(workerID: String, freeSlots: UInt32, finished: [TrialFinished] = []) {
        self.workerID = workerID; self.freeSlots = freeSlots; self.finished = finished
    }
    public static let minimumEncodedSize = 12
    public func encode(to w: inout ByteWriter) { w.write(workerID); w.write(freeSlots); w.write(finished) }
    public init(from r: inout ByteReader) throws(WireError) {
        workerID = try r.readString("workRequest.workerID")
        freeSlots = try r.read("workRequest.freeSlots")
        finished = try r.readArray(of: TrialFinished.self, "workRequest.finished")
    }
}

/// One trial attempt handed to a worker. Parameters and the trial spec travel as JSON text so
/// the search space can grow without a wire change.
public struct Assignment: WireCodable {
    public var lease: Lease
    public var sweepName: String
    public var trialNumber: UInt32
    public var seed: UInt64
    public var parametersJSON: String
    public var trialSpecJSON: String
    /// Path of the checkpoint to resume from; empty to start from step 0.
    public var resumeFrom: String
    /// Data-parallel trials: this slot's rank in the trial's group of `world` ranks, every
    /// rank's address (comma-separated, in rank order) and the group epoch that every
    /// collective frame carries. An ordinary trial is rank 0 of 1 with no peers.
    public var rank: UInt32
    public var world: UInt32
    public var peers: String
    public var groupEpoch: UInt64
    public init(lease: Lease, sweepName: String, trialNumber: UInt32, seed: UInt64, parametersJSON: String,
                trialSpecJSON: String, resumeFrom: String = "", rank: UInt32 = 0, world: UInt32 = 1, peers: String = "", groupEpoch: UInt64 = 0) {
        self.lease = lease; self.sweepName = sweepName; self.trialNumber = trialNumber; self.seed = seed
        self.parametersJSON = parametersJSON; self.trialSpecJSON = trialSpecJSON; self.resumeFrom = resumeFrom
        self.rank = rank; self.world = world; self.peers = peers; self.groupEpoch = groupEpoch
    }
    public static let minimumEncodedSize = Lease.minimumEncodedSize + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 4 + 8
    public func encode(to w: inout ByteWriter) {
        w.write(lease); w.write(sweepName); w.write(trialNumber); w.write(seed)
        w.write(parametersJSON); w.write(trialSpecJSON); w.write(resumeFrom)
        w.write(rank); w.write(world); w.write(peers); w.write(groupEpoch)
    }
    public init(from r: inout ByteReader) throws(WireError) {
        lease = try r.read(Lease.self)
        sweepName = try r.readString("assignment.sweepName")
        trialNumber = try r.read("assignment.trialNumber")
        seed = try r.read("assignment.seed")
        parametersJSON = try r.readString("assignment.parametersJSON")
        trialSpecJSON = try r.readString("assignment.trialSpecJSON")
        resumeFrom = try r.readString("assignment.resumeFrom")
        rank = try r.read("assignment.rank")
        world = try r.read("assignment.world")
        peers = try r.readString("assignment.peers")
        groupEpoch = try r.read("assignment.groupEpoch")
        guard world >= 1 else { throw .invalidValue(field: "assignment.world", value: UInt64(world)) }
        guard rank < world else { throw .invalidValue(field: "assignment.rank", value: UInt64(rank)) }
    }
}

/// Nothing to run now; ask again after the given delay.
public struct NoWork: WireCodable {
    public var retryAfterMilliseconds: UInt32
    public init(retryAfterMilliseconds: UInt32) { self.retryAfterMilliseconds = retryAfterMilliseconds }
    public static let minimumEncodedSize = 4
    public func encode(to w: inout ByteWriter) { w.write(retryAfterMilliseconds) }
    public init(from r: inout ByteReader) throws(WireError) { retryAfterMilliseconds = try r.read("noWork.retryAfterMilliseconds") }
}

/// One observation of a metric at a step.
public struct MetricPoint: WireCodable {
    public var name: String
    public var step: Int64
    public var value: Double
    /// Seconds since the Unix epoch.
    public var time: Double
    public init(name: String, step: Int64, value: Double, time: Double) {
        self.name = name; self.step = step; self.value = value; self.time = time
    }
    public static let minimumEncodedSize = 4 + 8 + 8 + 8
    public func encode(to w: inout ByteWriter) { w.write(name); w.write(step); w.write(value); w.write(time) }
    public init(from r: inout ByteReader) throws(WireError) {
        name = try r.readString("metric.name")
        step = try r.read("metric.step")
        value = try r.readDouble("metric.value")
        time = try r.readDouble("metric.time")
    }
}

/// Metric points of one attempt, sent in batches.
public struct MetricBatch: WireCodable {
    public var lease: Lease
    public var points: [MetricPoint]
    public init(lease: Lease, points: [MetricPoint]) { self.lease = lease; self.points = points }
    public static let minimumEncodedSize = Lease.minimumEncodedSize + 4
    public func encode(to w: inout ByteWriter) { w.write(lease); w.write(points) }
    public init(from r: inout ByteReader) throws(WireError) {
        lease = try r.read(Lease.self)
        points = try r.readArray(of: MetricPoint.self, "metricBatch.points")
    }
}

/// How an attempt ended, with the metric points not yet sent (so a short trial needs one
/// message, not two).
public struct TrialFinished: WireCodable {
    /// `groupUnformed`: a data-parallel rank could not join its group's ring (a peer never
    /// answered); handed back like `handedBack`, but the coordinator counts these per trial.
    public enum Outcome: UInt8, Sendable { case completed = 1, failed = 2, pruned = 3, cancelled = 4, handedBack = 5, groupUnformed = 6 }
    public var lease: Lease
    public var outcome: Outcome
    /// The objective's final value; NaN when there is none.
    public var objective: Double
    public var exitStatus: Int32
    public var error: String
    public var logTail: String
    public var points: [MetricPoint]
    public init(lease: Lease, outcome: Outcome, objective: Double, exitStatus: Int32 = 0, error: String = "", logTail: String = "",
                points: [MetricPoint] = []) {
        self.lease = lease; self.outcome = outcome; self.objective = objective
        self.exitStatus = exitStatus; self.error = error; self.logTail = logTail; self.points = points
    }
    public static let minimumEncodedSize = Lease.minimumEncodedSize + 1 + 8 + 4 + 4 + 4 + 4
    public func encode(to w: inout ByteWriter) {
        w.write(lease); w.write(outcome.rawValue); w.write(objective); w.write(exitStatus); w.write(error); w.write(logTail); w.write(points)
    }
    public init(from r: inout ByteReader) throws(WireError) {
        lease = try r.read(Lease.self)
        let raw: UInt8 = try r.read("trialFinished.outcome")
        guard let o = Outcome(rawValue: raw) else { throw .invalidValue(field: "trialFinished.outcome", value: UInt64(raw)) }
        outcome = o
        objective = try r.readDouble("trialFinished.objective")
        exitStatus = try r.read("trialFinished.exitStatus")
        error = try r.readString("trialFinished.error")
        logTail = try r.readString("trialFinished.logTail")
        points = try r.readArray(of: MetricPoint.self, "trialFinished.points")
    }
    // NaN objectives compare equal here so round-trip tests can use ==.
    public static func == (a: Self, b: Self) -> Bool {
        a.lease == b.lease && a.outcome == b.outcome && a.objective.bitPattern == b.objective.bitPattern
            && a.exitStatus == b.exitStatus && a.error == b.error && a.logTail == b.logTail && a.points == b.points
    }
}

/// Up to the requested number of trial attempts for a worker's free slots, in one reply.
public struct AssignmentBatch: WireCodable {
    public var assignments: [Assignment]
    public init(_ assignments: [Assignment]) { self.assignments = assignments }
    public static let minimumEncodedSize = 4
    public func encode(to w: inout ByteWriter) { w.write(assignments) }
    public init(from r: inout ByteReader) throws(WireError) { assignments = try r.readArray(of: Assignment.self, "assignmentBatch.assignments") }
}

/// A plain acknowledgement.
public struct Ack: WireCodable {
    public init() {}
    public static let minimumEncodedSize = 0
    public func encode(to w: inout ByteWriter) {}
    public init(from r: inout ByteReader) throws(WireError) {}
}

/// A question or command from the CLI (status, leaderboard, workers, cancel), answered with
/// JSON. `session` is the identity a `Welcome` granted.
public struct Query: WireCodable {
    public var session: String
    public var kind: String
    public var argument: String
    public init(session: String, kind: String, argument: String = "") { self.session = session; self.kind = kind; self.argument = argument }
    public static let minimumEncodedSize = 12
    public func encode(to w: inout ByteWriter) { w.write(session); w.write(kind); w.write(argument) }
    public init(from r: inout ByteReader) throws(WireError) {
        session = try r.readString("query.session")
        kind = try r.readString("query.kind")
        argument = try r.readString("query.argument")
    }
}

/// The answer to a `Query`, or to a submitted sweep.
public struct QueryResult: WireCodable {
    public var json: String
    public init(json: String) { self.json = json }
    public static let minimumEncodedSize = 4
    public func encode(to w: inout ByteWriter) { w.write(json) }
    public init(from r: inout ByteReader) throws(WireError) { json = try r.readString("queryResult.json") }
}

/// Submits a sweep from the CLI: the YAML config text and where it came from (for errors).
public struct SubmitSweep: WireCodable {
    public var session: String
    public var configYAML: String
    public var sourcePath: String
    public init(session: String, configYAML: String, sourcePath: String) {
        self.session = session; self.configYAML = configYAML; self.sourcePath = sourcePath
    }
    public static let minimumEncodedSize = 12
    public func encode(to w: inout ByteWriter) { w.write(session); w.write(configYAML); w.write(sourcePath) }
    public init(from r: inout ByteReader) throws(WireError) {
        session = try r.readString("submitSweep.session")
        configYAML = try r.readString("submitSweep.configYAML")
        sourcePath = try r.readString("submitSweep.sourcePath")
    }
}

/// A checkpoint of a running attempt, sent to the coordinator, which stores it content-addressed
/// next to the run store so any worker can resume the trial from it.
public struct CheckpointUpload: WireCodable {
    public var lease: Lease
    public var step: Int64
    public var bytes: [UInt8]
    public init(lease: Lease, step: Int64, bytes: [UInt8]) { self.lease = lease; self.step = step; self.bytes = bytes }
    public static let minimumEncodedSize = Lease.minimumEncodedSize + 8 + 4
    public func encode(to w: inout ByteWriter) { w.write(lease); w.write(step); w.write(bytes) }
    public init(from r: inout ByteReader) throws(WireError) {
        lease = try r.read(Lease.self)
        step = try r.read("checkpointUpload.step")
        bytes = try r.readBytes("checkpointUpload.bytes")
    }
}

/// A stored checkpoint, by content hash (the answer to a `checkpoint` query).
public struct CheckpointData: WireCodable {
    public var hash: String
    public var bytes: [UInt8]
    public init(hash: String, bytes: [UInt8]) { self.hash = hash; self.bytes = bytes }
    public static let minimumEncodedSize = 8
    public func encode(to w: inout ByteWriter) { w.write(hash); w.write(bytes) }
    public init(from r: inout ByteReader) throws(WireError) {
        hash = try r.readString("checkpointData.hash")
        bytes = try r.readBytes("checkpointData.bytes")
    }
}
