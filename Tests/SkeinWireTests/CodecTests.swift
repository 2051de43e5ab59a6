import Testing
@testable import SkeinWire

/// One valid message of every kind (the fuzz corpus and the round-trip set).
let samples: [ControlMessage] = [
    .hello(Hello(role: .worker, name: "w1", host: "node-1", slots: 2)),
    .hello(Hello(role: .worker, name: "w1", host: "node-1", slots: 2, nonce: [1, 2, 3], proof: Array(repeating: 9, count: 32))),
    .challenge(Challenge(nonce: Array(0..<32))),
    .welcome(Welcome(workerID: "w-7", heartbeatIntervalMilliseconds: 500)),
    .refusal(Refusal(.authentication, "bad proof")),
    .heartbeat(Heartbeat(workerID: "w-7", freeSlots: 1, leases: [Lease(trialID: 3, attempt: 1), Lease(trialID: 9, attempt: 2)])),
    .heartbeatAck(HeartbeatAck(revoked: [Lease(trialID: 3, attempt: 1)], drain: true)),
    .workRequest(WorkRequest(workerID: "w-7", freeSlots: 2)),
    .workRequest(WorkRequest(workerID: "w-7", freeSlots: 1, finished: [TrialFinished(lease: Lease(trialID: 2, attempt: 1), outcome: .completed,
                                                                                     objective: 0.5, points: [MetricPoint(name: "x", step: 0, value: 1, time: 0)])])),
    .assignment(Assignment(lease: Lease(trialID: 5, attempt: 1), sweepName: "fmnist", trialNumber: 4, seed: 42,
                           parametersJSON: #"{"lr":0.01}"#, trialSpecJSON: #"{"model":"mlp"}"#, resumeFrom: "/ckpt/a")),
    .assignment(Assignment(lease: Lease(trialID: 9, attempt: 2), sweepName: "dp", trialNumber: 0, seed: 1, parametersJSON: "{}",
                           trialSpecJSON: "{}", rank: 1, world: 2, peers: "ipc:///tmp/g-0.ipc,ipc:///tmp/g-1.ipc", groupEpoch: 77)),
    .noWork(NoWork(retryAfterMilliseconds: 100)),
    .metricBatch(MetricBatch(lease: Lease(trialID: 5, attempt: 1), points: [
        MetricPoint(name: "loss", step: 1, value: 0.5, time: 1.7e9),
        MetricPoint(name: "accuracy", step: 1, value: 0.8, time: 1.7e9 + 1),
    ])),
    .trialFinished(TrialFinished(lease: Lease(trialID: 5, attempt: 1), outcome: .failed, objective: .nan, exitStatus: 3,
                                 error: "exit 3", logTail: "Traceback…", points: [MetricPoint(name: "loss", step: 9, value: 0.1, time: 2)])),
    .assignments(AssignmentBatch([Assignment(lease: Lease(trialID: 6, attempt: 2), sweepName: "s", trialNumber: 1, seed: 3,
                                             parametersJSON: "{}", trialSpecJSON: "{}")])),
    .ack(Ack()),
    .checkpointUpload(CheckpointUpload(lease: Lease(trialID: 4, attempt: 2), step: 120, bytes: [1, 2, 3, 4])),
    .checkpointData(CheckpointData(hash: "ab12", bytes: [9, 8])),
    .query(Query(session: "w-7", kind: "leaderboard", argument: "fmnist")),
    .queryResult(QueryResult(json: "[]")),
    .submitSweep(SubmitSweep(session: "c-1", configYAML: "name: x\n", sourcePath: "configs/x.yaml")),
]

/// A small deterministic generator (SplitMix64), so a failing fuzz case is reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Wire codec")
struct CodecTests {
    @Test("every message kind round-trips")
    func roundTrip() throws {
        #expect(Set(samples.map(\.kind)) == Set(ControlMessage.Kind.allCases))
        for m in samples {
            #expect(try ControlMessage.decode(m.encoded()) == m)
        }
    }

    @Test("every valid frame truncated at every byte throws .truncated")
    func truncation() {
        for m in samples {
            let bytes = m.encoded()
            for cut in 0..<bytes.count {
                do {
                    _ = try ControlMessage.decode(Array(bytes[..<cut]))
                    Issue.record("decoded a frame of \(m.kind) truncated to \(cut) bytes")
                } catch {
                    if case .truncated = error {} else { Issue.record("\(m.kind) cut at \(cut): \(error)") }
                }
            }
        }
    }

    @Test("wrong magic, version and kind are refused with typed errors")
    func header() {
        var b = samples[0].encoded()
        b[0] = 0
        #expect(throws: WireError.badMagic(0x4B00)) { try ControlMessage.decode(b) }
        b = samples[0].encoded(); b[2] = 99
        #expect(throws: WireError.unsupportedVersion(99)) { try ControlMessage.decode(b) }
        b = samples[0].encoded(); b[3] = 200
        #expect(throws: WireError.unknownKind(200)) { try ControlMessage.decode(b) }
        b = samples[0].encoded() + [0]
        #expect(throws: WireError.trailingBytes(1)) { try ControlMessage.decode(b) }
        #expect(throws: WireError.lengthOutOfRange(field: "frame", declared: UInt64(b.count), limit: 8)) {
            try ControlMessage.decode(b, maxFrame: 8)
        }
    }

    @Test("a huge length field does not allocate: it is checked against the bytes present")
    func hostileLength() {
        // A heartbeat that claims 2^32-1 leases in a 30-byte frame.
        var w = ByteWriter()
        w.write(UInt16(0x4B53)); w.write(Wire.protocolVersion); w.write(ControlMessage.Kind.heartbeat.rawValue)
        w.write(UInt32(14)); w.write(""); w.write(UInt32(1)); w.write(UInt32.max); w.write(UInt16(0))
        #expect(throws: WireError.self) { try ControlMessage.decode(w.bytes) }
    }

    @Test("fuzz: 100,000 random and mutated frames never trap")
    func fuzz() {
        var rng = SplitMix(state: 0x5EED)
        var decoded = 0, rejected = 0
        let frames = samples.map { $0.encoded() }
        for i in 0..<100_000 {
            var bytes: [UInt8]
            if i % 4 == 0 {
                // Pure noise, sometimes behind a valid header so the body parser is exercised.
                bytes = (0..<Int.random(in: 0..<96, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if i % 8 == 0, bytes.count >= 8 {
                    bytes[0] = 0x53; bytes[1] = 0x4B; bytes[2] = Wire.protocolVersion
                    bytes[3] = UInt8.random(in: 1...18, using: &rng)
                    let n = UInt32(bytes.count - 8)
                    bytes[4] = UInt8(n & 0xFF); bytes[5] = UInt8(n >> 8); bytes[6] = 0; bytes[7] = 0
                }
            } else {
                bytes = frames[Int.random(in: 0..<frames.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    guard !bytes.isEmpty else { break }
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    switch UInt8.random(in: 0...3, using: &rng) {
                    case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                    case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    default: bytes.remove(at: at)
                    }
                }
            }
            do {
                let m = try ControlMessage.decode(bytes)
                // Whatever decodes must re-encode to a frame that decodes to the same message.
                #expect(try ControlMessage.decode(m.encoded()) == m)
                decoded += 1
            } catch {
                rejected += 1
            }
        }
        #expect(decoded + rejected == 100_000)
        #expect(rejected > 50_000)
    }

    @Test("tensor frames round-trip; damaged tensor frames are refused")
    func tensorFrame() throws {
        for n in [0, 1, 7, 1000] {
            let values = (0..<n).map { Float($0) * 0.5 - 3 }
            let header = TensorFrameHeader(count: UInt32(n), epoch: 3, tag: 99, offset: 12)
            let frame = TensorFrameHeader.encode(header, values: values)
            try frame.withUnsafeBytes { buf in
                let h = try TensorFrameHeader.decode(buf)
                #expect(h == header)
                var out = [Float](repeating: .nan, count: n)
                out.withUnsafeMutableBufferPointer {
                    TensorFrameHeader.readPayload(UnsafeRawBufferPointer(rebasing: buf[TensorFrameHeader.size...]), into: $0)
                }
                #expect(out == values)
            }
            for cut in 0..<frame.count {
                _ = Array(frame[..<cut]).withUnsafeBytes { buf in
                    #expect(throws: WireError.self) { try TensorFrameHeader.decode(buf) }
                }
            }
        }
        let big = TensorFrameHeader.encode(TensorFrameHeader(count: 10, epoch: 0, tag: 0, offset: 0), values: Array(repeating: 1, count: 10))
        _ = big.withUnsafeBytes { buf in
            #expect(throws: WireError.lengthOutOfRange(field: "count", declared: 10, limit: 4)) {
                try TensorFrameHeader.decode(buf, maxCount: 4)
            }
        }
        // A payload in the sender's shared window: the frame is the header alone.
        let shared = TensorFrameHeader(count: 1000, epoch: 5, tag: 1, offset: 0, shared: SharedPayload(generation: 3, position: 4096))
        var frame = [UInt8](repeating: 0, count: shared.frameSize)
        #expect(frame.count == TensorFrameHeader.size)
        frame.withUnsafeMutableBytes { shared.write(into: $0) }
        let decoded = try frame.withUnsafeBytes { buf throws(WireError) in try TensorFrameHeader.decode(buf) }
        #expect(decoded == shared)
        // With a payload after it, or a last word without the shared bit, it is refused.
        _ = (frame + [0, 0, 0, 0]).withUnsafeBytes { buf in
            #expect(throws: WireError.trailingBytes(4)) { try TensorFrameHeader.decode(buf) }
        }
        frame[39] = 0x12
        _ = frame.withUnsafeBytes { buf in
            #expect(throws: WireError.self) { try TensorFrameHeader.decode(buf) }
        }
        var rng = SplitMix(state: 7)
        for _ in 0..<20_000 {
            let noise = (0..<Int.random(in: 0..<80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            noise.withUnsafeBytes { buf in _ = try? TensorFrameHeader.decode(buf) }
            noise.withUnsafeBytes { buf in _ = try? TensorFrameHeader.decodeHeader(buf) }
        }
    }

    @Test("a byte stream's header alone decodes, whatever follows; its count is bounded before a payload is read")
    func tensorHeaderAlone() throws {
        let header = TensorFrameHeader(count: 1000, epoch: 3, tag: 99, offset: 12)
        var bytes = [UInt8](repeating: 0, count: TensorFrameHeader.size)
        bytes.withUnsafeMutableBytes { header.write(into: $0) }
        let alone = try bytes.withUnsafeBytes { buf throws(WireError) in try TensorFrameHeader.decodeHeader(buf) }
        #expect(alone == header)
        // decode wants the 4,000 payload bytes; decodeHeader does not look past the header.
        _ = bytes.withUnsafeBytes { buf in #expect(throws: WireError.self) { try TensorFrameHeader.decode(buf) } }
        let followed = try (bytes + [1, 2, 3]).withUnsafeBytes { buf throws(WireError) in try TensorFrameHeader.decodeHeader(buf) }
        #expect(followed == header)
        _ = bytes.withUnsafeBytes { buf in
            #expect(throws: WireError.lengthOutOfRange(field: "count", declared: 1000, limit: 999)) {
                try TensorFrameHeader.decodeHeader(buf, maxCount: 999)
            }
        }
        for cut in 0..<TensorFrameHeader.size {
            _ = Array(bytes[..<cut]).withUnsafeBytes { buf in #expect(throws: WireError.self) { try TensorFrameHeader.decodeHeader(buf) } }
        }
        bytes[0] ^= 0xFF
        _ = bytes.withUnsafeBytes { buf in #expect(throws: WireError.self) { try TensorFrameHeader.decodeHeader(buf) } }
    }
}
