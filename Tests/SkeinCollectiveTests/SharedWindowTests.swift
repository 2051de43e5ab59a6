import Foundation
import Testing
import SkeinTestSupport
import SkeinTensor
import SkeinTransport
import SkeinWire
@testable import SkeinCollective

/// A hand-driven rank 1 of a two-rank ring: it joins like a real rank, then sends whatever frame
/// a test wants rank 0 to receive.
struct FakeRank {
    let inbound: Socket, outbound: Socket
    let epoch: UInt64

    init(ownAddress: String, nextAddress: String, epoch: UInt64) throws {
        self.epoch = epoch
        inbound = try Socket(.pair)
        try inbound.listen(ownAddress)
        outbound = try Socket(.pair, options: Socket.Options(reconnectMin: .milliseconds(10), reconnectMax: .milliseconds(50)))
        try outbound.dial(nextAddress)
    }

    /// The ring's joining token (tag 0, one float), both ways.
    func join() async throws {
        try await send(TensorFrameHeader(count: 1, epoch: epoch, tag: 0, offset: 0), values: [1])
        _ = try await inbound.receive(timeout: .seconds(10))
    }

    func send(_ header: TensorFrameHeader, values: [Float] = []) async throws {
        var m = try Message(count: header.frameSize)
        m.withUnsafeMutableBytes { body in
            header.write(into: body)
            if header.shared == nil { TensorFrameHeader.writePayload(values, into: UnsafeMutableRawBufferPointer(rebasing: body[TensorFrameHeader.size...])) }
        }
        try await outbound.send(m, timeout: .seconds(10))
    }
}

@Suite("Shared-memory payloads between ranks on one host")
struct SharedWindowTests {
    /// Rank 0 (real) and a fake rank 1; the first allreduce's reduce-scatter frame rank 0
    /// expects from rank 1 has this tag and 5,000 floats (its half of 10,000).
    func ring(_ body: (RingGroup, FakeRank) async throws -> Void) async throws {
        let base = TemporaryDirectory.unique(prefix: "shm")
        let addresses = ["ipc://\(base)-0.ipc", "ipc://\(base)-1.ipc"]
        let fake = try FakeRank(ownAddress: addresses[1], nextAddress: addresses[0], epoch: 9)
        async let joined: Void = fake.join()
        let group = try await RingGroup(rank: 0, addresses: addresses, epoch: 9, timeout: .seconds(2))
        try await joined
        try await body(group, fake)
    }
    let firstReduceScatterTag: UInt64 = 1 << 16 | 1 << 12

    @Test("a frame pointing outside the sender's window is refused as malformed, naming the rank; nothing is read")
    func positionOutsideWindow() async throws {
        try await ring { group, fake in
            // A real but small window of generation 1, and a frame pointing past its end.
            let path = SharedWindow.path(receiver: group.ownAddress, epoch: 9, generation: 1)
            let window = try SharedWindow.create(path: path, size: 4096)
            defer { unlink(window.path) }
            try await fake.send(TensorFrameHeader(count: 5000, epoch: 9, tag: firstReduceScatterTag, offset: 0,
                                                  shared: SharedPayload(generation: 1, position: 64)))
            let buffer = FloatBuffer(count: 10_000, value: 1)
            await #expect(throws: CollectiveError.malformed(rank: 1, .lengthOutOfRange(field: "shared.position", declared: 64, limit: 4096))) {
                try await group.allreduce(buffer.buffer)
            }
        }
    }

    @Test("a frame naming a window that does not exist fails the collective, naming the rank; rank 0's own window is removed")
    func missingWindow() async throws {
        try await ring { group, fake in
            try await fake.send(TensorFrameHeader(count: 5000, epoch: 9, tag: firstReduceScatterTag, offset: 0,
                                                  shared: SharedPayload(generation: 77, position: 0)))
            let buffer = FloatBuffer(count: 10_000, value: 1)
            do {
                try await group.allreduce(buffer.buffer)
                Issue.record("allreduce succeeded on a frame naming no window")
            } catch let CollectiveError.peerFailed(rank, operation, _) {
                #expect(rank == 1 && operation == "map shared window")
            }
            // The collective failed: nothing of rank 0's is left in /dev/shm.
            let ours = SharedWindow.path(receiver: group.nextAddress, epoch: 9, generation: 1)
            #expect(!FileManager.default.fileExists(atPath: ours))
        }
    }

    @Test("when the window cannot be made, payloads go in the frames and the sum is still right")
    func fallbackWithoutWindow() async throws {
        let base = TemporaryDirectory.unique(prefix: "shmfb")
        let addresses = ["ipc://\(base)-0.ipc", "ipc://\(base)-1.ipc"]
        // A directory where rank 0's window file would go: creating the window fails.
        let blocked = SharedWindow.path(receiver: addresses[1], epoch: 5, generation: 1)
        try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: blocked) }
        async let one = RingGroup(rank: 1, addresses: addresses, epoch: 5, timeout: .seconds(5))
        let zero = try await RingGroup(rank: 0, addresses: addresses, epoch: 5, timeout: .seconds(5))
        let rankOne = try await one
        let a = FloatBuffer(count: 10_000, value: 1), b = FloatBuffer(count: 10_000, value: 2)
        async let other: Void = rankOne.allreduce(b.buffer)
        try await zero.allreduce(a.buffer)
        try await other
        #expect(a.array.allSatisfy { $0 == 3 } && b.array.allSatisfy { $0 == 3 })
        #expect(!zero.sendsThroughSharedMemory, "rank 0 should have fallen back to inline payloads")
        #expect(rankOne.sendsThroughSharedMemory)
        async let closing: Void = rankOne.close()
        try await zero.close()
        try await closing
    }
}
