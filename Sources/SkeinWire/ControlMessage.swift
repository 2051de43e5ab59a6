/// Every control message, as one enum. To add a message: define a `WireCodable` struct,
/// add a case here and a new, never-reused `Kind` number; old peers answer it with
/// `unknownKind`, which the handshake's version check makes rare.
///
/// Frame: magic "SK" (2) ‖ version (1) ‖ kind (1) ‖ body length (4, LE) ‖ body.
public enum ControlMessage: Equatable, Sendable {
    case hello(Hello)
    case challenge(Challenge)
    case welcome(Welcome)
    case refusal(Refusal)
    case heartbeat(Heartbeat)
    case heartbeatAck(HeartbeatAck)
    case workRequest(WorkRequest)
    case assignment(Assignment)
    case noWork(NoWork)
    case metricBatch(MetricBatch)
    case trialFinished(TrialFinished)
    case ack(Ack)
    case query(Query)
    case queryResult(QueryResult)
    case submitSweep(SubmitSweep)
    case assignments(AssignmentBatch)
    case checkpointUpload(CheckpointUpload)
    case checkpointData(CheckpointData)

    /// Wire numbers; never renumber or reuse one.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case hello = 1, challenge, welcome, refusal, heartbeat, heartbeatAck, workRequest, assignment,
             noWork, metricBatch, trialFinished, ack, query, queryResult, submitSweep, assignments, checkpointUpload, checkpointData
    }

    public var kind: Kind {
        switch self {
        case .hello: .hello
        case .challenge: .challenge
        case .welcome: .welcome
        case .refusal: .refusal
        case .heartbeat: .heartbeat
        case .heartbeatAck: .heartbeatAck
        case .workRequest: .workRequest
        case .assignment: .assignment
        case .noWork: .noWork
        case .metricBatch: .metricBatch
        case .trialFinished: .trialFinished
        case .ack: .ack
        case .query: .query
        case .queryResult: .queryResult
        case .submitSweep: .submitSweep
        case .assignments: .assignments
        case .checkpointUpload: .checkpointUpload
        case .checkpointData: .checkpointData
        }
    }

    static let headerSize = 8

    /// Encodes the message as one frame.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.write(Wire.controlMagic)
        w.write(Wire.protocolVersion)
        w.write(kind.rawValue)
        w.write(UInt32(0)) // body length, patched below
        switch self {
        case let .hello(m): w.write(m)
        case let .challenge(m): w.write(m)
        case let .welcome(m): w.write(m)
        case let .refusal(m): w.write(m)
        case let .heartbeat(m): w.write(m)
        case let .heartbeatAck(m): w.write(m)
        case let .workRequest(m): w.write(m)
        case let .assignment(m): w.write(m)
        case let .noWork(m): w.write(m)
        case let .metricBatch(m): w.write(m)
        case let .trialFinished(m): w.write(m)
        case let .ack(m): w.write(m)
        case let .query(m): w.write(m)
        case let .queryResult(m): w.write(m)
        case let .submitSweep(m): w.write(m)
        case let .assignments(m): w.write(m)
        case let .checkpointUpload(m): w.write(m)
        case let .checkpointData(m): w.write(m)
        }
        w.patch(UInt32(w.bytes.count - Self.headerSize), at: 4)
        return w.bytes
    }

    /// Decodes exactly one frame. Total: any malformed, truncated or oversized input throws.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxFrame: Int = Wire.defaultMaxFrame) throws(WireError) -> ControlMessage {
        if bytes.count > maxFrame {
            throw .lengthOutOfRange(field: "frame", declared: UInt64(bytes.count), limit: UInt64(maxFrame))
        }
        var r = ByteReader(bytes)
        let magic: UInt16 = try r.read("magic")
        guard magic == Wire.controlMagic else { throw .badMagic(magic) }
        let version: UInt8 = try r.read("version")
        guard version == Wire.protocolVersion else { throw .unsupportedVersion(version) }
        let rawKind: UInt8 = try r.read("kind")
        guard let kind = Kind(rawValue: rawKind) else { throw .unknownKind(rawKind) }
        let length = Int(try r.read("length", as: UInt32.self))
        guard length == r.remaining else {
            if length > r.remaining { throw .truncated(field: "body", needed: length, available: r.remaining) }
            throw .trailingBytes(r.remaining - length)
        }
        let message: ControlMessage
        switch kind {
        case .hello: message = .hello(try r.read(Hello.self))
        case .challenge: message = .challenge(try r.read(Challenge.self))
        case .welcome: message = .welcome(try r.read(Welcome.self))
        case .refusal: message = .refusal(try r.read(Refusal.self))
        case .heartbeat: message = .heartbeat(try r.read(Heartbeat.self))
        case .heartbeatAck: message = .heartbeatAck(try r.read(HeartbeatAck.self))
        case .workRequest: message = .workRequest(try r.read(WorkRequest.self))
        case .assignment: message = .assignment(try r.read(Assignment.self))
        case .noWork: message = .noWork(try r.read(NoWork.self))
        case .metricBatch: message = .metricBatch(try r.read(MetricBatch.self))
        case .trialFinished: message = .trialFinished(try r.read(TrialFinished.self))
        case .ack: message = .ack(try r.read(Ack.self))
        case .query: message = .query(try r.read(Query.self))
        case .queryResult: message = .queryResult(try r.read(QueryResult.self))
        case .submitSweep: message = .submitSweep(try r.read(SubmitSweep.self))
        case .assignments: message = .assignments(try r.read(AssignmentBatch.self))
        case .checkpointUpload: message = .checkpointUpload(try r.read(CheckpointUpload.self))
        case .checkpointData: message = .checkpointData(try r.read(CheckpointData.self))
        }
        if r.remaining != 0 { throw .trailingBytes(r.remaining) }
        return message
    }

    public static func decode(_ bytes: [UInt8], maxFrame: Int = Wire.defaultMaxFrame) throws(WireError) -> ControlMessage {
        try bytes.withUnsafeBytes { b in
            Result { () throws(WireError) in try decode(b, maxFrame: maxFrame) }
        }.get()
    }
}
