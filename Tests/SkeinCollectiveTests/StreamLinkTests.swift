import Foundation
import Testing
import SkeinTensor
import SkeinTransport
import SkeinWire
@testable import SkeinCollective

/// Two free loopback TCP addresses (bound once to find free ports, then released).
func freeTCPAddresses(_ n: Int) throws -> [String] {
    let probes = try (0..<n).map { _ in try StreamListener("tcp://127.0.0.1:0") }
    defer { for p in probes { p.close() } }
    return try probes.map { "tcp://127.0.0.1:\(try $0.boundPort())" }
}

/// Writes `bytes` to `stream` from memory that stays put for the whole write.
func write(_ bytes: [UInt8], to stream: ByteStream) async throws {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
    defer { b.deallocate() }
    b.copyBytes(from: bytes)
    try await stream.write([UnsafeRawBufferPointer(b)], timeout: .seconds(5))
}

/// Two ranks allreduce `count` ones and twos; both must end with threes.
func expectPairSums(_ x: RingGroup, _ y: RingGroup, count: Int) async throws {
    let a = FloatBuffer(count: count, value: 1), b = FloatBuffer(count: count, value: 2)
    async let other: Void = y.allreduce(b.buffer)
    try await x.allreduce(a.buffer)
    try await other
    #expect(a.array.allSatisfy { $0 == 3 } && b.array.allSatisfy { $0 == 3 })
}

/// Leaves both groups together (each close waits for the other's).
func closeBoth(_ x: RingGroup, _ y: RingGroup) async throws {
    async let closing: Void = y.close()
    try await x.close()
    try await closing
}

@Suite("Ring links over tcp (nng byte streams)")
struct StreamLinkTests {
    @Test("tcp links are byte streams; a stray connection sending garbage to a rank's port first is dropped and the ring still forms and sums")
    func strayConnection() async throws {
        let addresses = try freeTCPAddresses(2)
        async let zero = RingGroup(rank: 0, addresses: addresses, epoch: 3, timeout: .seconds(5))
        // Something else connects to rank 0 before rank 1 does, and sends 64 bytes of garbage.
        let stray = try await ByteStream.dial(addresses[0], timeout: .seconds(5))
        let junk = [UInt8](repeating: 0xAB, count: 64)
        try await write(junk, to: stray)
        try await Task.sleep(for: .milliseconds(100))
        let one = try await RingGroup(rank: 1, addresses: addresses, epoch: 3, timeout: .seconds(5))
        let rankZero = try await zero
        #expect(rankZero.next is StreamLink && rankZero.prev is StreamLink)
        try await expectPairSums(rankZero, one, count: 300_001)
        try await closeBoth(rankZero, one)
    }

    @Test("a tcp rank listens on every interface: it is reached at the address the others know, even if its own name resolves elsewhere")
    func listensEverywhere() async throws {
        #expect(RingGroup.listenAddress("tcp://node-7:20001") == "tcp://0.0.0.0:20001")
        #expect(RingGroup.listenAddress("tcp://[fe80::1]:20002") == "tcp://[::]:20002")
        #expect(RingGroup.listenAddress("ipc:///tmp/x.ipc") == "ipc:///tmp/x.ipc")
        // Rank 1's own list names it 127.0.0.3 (as a machine whose name maps to 127.0.1.1 in
        // its /etc/hosts sees itself); rank 0 reaches it at 127.0.0.2. Bound to its own idea of
        // its address, rank 1 would never be reached.
        let ports = try freeTCPAddresses(2).map { $0.split(separator: ":").last! }
        let seenByZero = ["tcp://127.0.0.1:\(ports[0])", "tcp://127.0.0.2:\(ports[1])"]
        let seenByOne = ["tcp://127.0.0.1:\(ports[0])", "tcp://127.0.0.3:\(ports[1])"]
        async let zero = RingGroup(rank: 0, addresses: seenByZero, epoch: 4, timeout: .seconds(5))
        let one = try await RingGroup(rank: 1, addresses: seenByOne, epoch: 4, timeout: .seconds(5))
        let rankZero = try await zero
        try await expectPairSums(rankZero, one, count: 1000)
        try await closeBoth(rankZero, one)
    }

    @Test("over tcp, a rank of another group (other epoch) is refused: joining fails naming it as stale")
    func staleRank() async throws {
        let addresses = try freeTCPAddresses(2)
        async let zero = RingGroup(rank: 0, addresses: addresses, epoch: 5, timeout: .seconds(1))
        let one: Result<RingGroup, CollectiveError>
        do throws(CollectiveError) { one = .success(try await RingGroup(rank: 1, addresses: addresses, epoch: 6, timeout: .seconds(1))) } catch {
            one = .failure(error)
        }
        do {
            _ = try await zero
            Issue.record("rank 0 joined a rank of epoch 6")
        } catch {
            guard case let .stalePeer(rank, expected, got)? = error as? CollectiveError else { Issue.record("rank 0: \(error)"); return }
            #expect(rank == 1 && expected == 5 && got == 6)
        }
        guard case .failure(.stalePeer(0, 6, 5)) = one else { Issue.record("rank 1: \(one)"); return }
    }

    @Test("a frame of the wrong length is refused as out of sequence, naming the rank (a short one once the wait for the rest ends)",
          arguments: [7, 9_000])
    func wrongLength(count: Int) async throws {
        let addresses = try freeTCPAddresses(2)
        async let zero = RingGroup(rank: 0, addresses: addresses, epoch: 8, timeout: .seconds(2))
        // A hand-driven rank 1: it joins, then sends a reduce-scatter frame of the wrong length.
        let listener = try StreamListener(addresses[1])
        let out = try await ByteStream.dial(addresses[0], timeout: .seconds(5))
        func frame(_ h: TensorFrameHeader, _ values: [Float]) -> [UInt8] { TensorFrameHeader.encode(h, values: values) }
        let token = frame(TensorFrameHeader(count: 1, epoch: 8, tag: 0, offset: 0), [1])
        try await write(token, to: out)
        let inbound = try await listener.accept(timeout: .seconds(5))
        let group = try await zero
        _ = inbound
        let wrong = frame(TensorFrameHeader(count: UInt32(count), epoch: 8, tag: 1 << 16 | 1 << 12, offset: 0), [Float](repeating: 1, count: count))
        try await write(wrong, to: out)
        let values = FloatBuffer(count: 10_000, value: 1)
        do throws(CollectiveError) {
            try await group.allreduce(values.buffer)
            Issue.record("a frame of the wrong length was taken")
        } catch {
            guard case .outOfSequence(rank: 1, _, _) = error else { Issue.record("\(error)"); return }
        }
    }
}

@Suite("The order of a ring pipeline on one thread or over streams (pure)")
struct PipelineOrderTests {
    /// Replays `order`: everything sendable before the first frame, then after each arrival.
    func replay(_ steps: [RingStep], chunk: Int) -> [String] {
        var order = PipelineOrder(steps: steps, chunk: chunk)
        var log: [String] = []
        func sends() { while let (i, k) = order.nextSend() { log.append("send \(i).\(k)") } }
        sends()
        while let (i, k) = order.nextReceive() {
            log.append("recv \(i).\(k)")
            order.received()
            sends()
        }
        return log
    }

    @Test("step 0 leaves at once; frame k of step i leaves right after frame k of step i − 1 arrives; uneven last frames")
    func forwarding() {
        // 3 ranks: segments of 5, 5, 4 elements, frames of 2: steps of 3, 3 and 2 frames.
        let steps = [RingStep(out: 0..<5, into: 5..<10, tag: 0, add: true, slot: nil),
                     RingStep(out: 5..<10, into: 10..<14, tag: 1, add: true, slot: nil),
                     RingStep(out: 10..<14, into: 0..<5, tag: 2, add: false, slot: nil)]
        #expect(replay(steps, chunk: 2) == [
            "send 0.0", "send 0.1", "send 0.2",
            "recv 0.0", "send 1.0", "recv 0.1", "send 1.1", "recv 0.2", "send 1.2",
            "recv 1.0", "send 2.0", "recv 1.1", "send 2.1",
            "recv 2.0", "recv 2.1", "recv 2.2",
        ])
    }

    @Test("empty segments still travel as one (empty) frame each")
    func empty() {
        let steps = [RingStep(out: 0..<0, into: 0..<0, tag: 0, add: true, slot: nil),
                     RingStep(out: 0..<0, into: 0..<0, tag: 1, add: false, slot: nil)]
        #expect(replay(steps, chunk: 4) == ["send 0.0", "recv 0.0", "send 1.0", "recv 1.0"])
    }
}
