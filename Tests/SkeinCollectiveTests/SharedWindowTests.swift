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

    /// A first allreduce of 10,000 floats whose frames from the fake rank 1 point into its
    /// window, so that rank 0 maps it and waits on its doorbell from the second allreduce on;
    /// `body` gets the window to announce frames of the second allreduce in.
    func afterFirstAllreduce(_ body: (RingGroup, SharedWindow) async throws -> Void) async throws {
        try await ring { group, fake in
            let path = SharedWindow.path(receiver: group.ownAddress, epoch: 9, generation: 1)
            let window = try SharedWindow.create(path: path, size: bells.bytes + 2 * 5000 * 4)
            defer { unlink(window.path) }
            try await fake.send(TensorFrameHeader(count: 5000, epoch: 9, tag: firstReduceScatterTag, offset: 0,
                                                  shared: SharedPayload(generation: 1, position: UInt64(bells.bytes))))
            try await fake.send(TensorFrameHeader(count: 5000, epoch: 9, tag: 1 << 16 | 2 << 12, offset: 0,
                                                  shared: SharedPayload(generation: 1, position: UInt64(bells.bytes + 5000 * 4))))
            let buffer = FloatBuffer(count: 10_000, value: 1)
            try await group.allreduce(buffer.buffer)
            try await body(group, window)
        }
    }
    let bells = BellLayout(world: 2)
    /// The second allreduce's first frame from rank 1: tag, and its cell (second half, frame 0).
    let secondReduceScatterTag: UInt64 = 2 << 16 | 1 << 12
    var secondFirstCell: Int { bells.cell(half: 1, ordinal: 0) }

    @Test("a doorbell announcing a frame of another group epoch is refused as stale, naming the rank")
    func staleAnnouncement() async throws {
        try await afterFirstAllreduce { group, window in
            window.announce(TensorFrameHeader(count: 5000, epoch: 8, tag: secondReduceScatterTag, offset: 0,
                                              shared: SharedPayload(generation: 1, position: UInt64(bells.bytes))),
                            cell: secondFirstCell, ready: 2)
            let buffer = FloatBuffer(count: 10_000, value: 1)
            await #expect(throws: CollectiveError.stalePeer(rank: 1, expectedEpoch: 9, gotEpoch: 8)) {
                try await group.allreduce(buffer.buffer)
            }
        }
    }

    @Test("a doorbell announcing a payload outside the window is refused as malformed; garbage in a cell too")
    func badAnnouncement() async throws {
        try await afterFirstAllreduce { group, window in
            let past = UInt64(window.size - 100)
            window.announce(TensorFrameHeader(count: 5000, epoch: 9, tag: secondReduceScatterTag, offset: 0,
                                              shared: SharedPayload(generation: 1, position: past)),
                            cell: secondFirstCell, ready: 2)
            let buffer = FloatBuffer(count: 10_000, value: 1)
            await #expect(throws: CollectiveError.malformed(rank: 1, .lengthOutOfRange(field: "shared.position", declared: past,
                                                                                        limit: UInt64(window.size)))) {
                try await group.allreduce(buffer.buffer)
            }
        }
        try await afterFirstAllreduce { group, window in
            // Random bytes where the header goes, then a ready word: refused, nothing read.
            for i in 0..<TensorFrameHeader.size { (window.base + secondFirstCell + i).storeBytes(of: UInt8.random(in: 0...255), as: UInt8.self) }
            (window.base + secondFirstCell + BellLayout.readyOffset).storeBytes(of: UInt64(2), as: UInt64.self)
            let buffer = FloatBuffer(count: 10_000, value: 1)
            let start = ContinuousClock.now
            do {
                try await group.allreduce(buffer.buffer)
                Issue.record("allreduce accepted a garbage announcement")
            } catch {
                // Refused on sight (not by the 2 s deadline): the cell was read and rejected.
                if case CollectiveError.peerTimeout = error { Issue.record("timed out instead: \(error)") }
                #expect(ContinuousClock.now - start < .seconds(1))
            }
        }
    }

    @Test("a neighbour that never rings fails the collective within the deadline, naming it")
    func silentDoorbell() async throws {
        try await afterFirstAllreduce { group, _ in
            let buffer = FloatBuffer(count: 10_000, value: 1)
            let start = ContinuousClock.now
            await #expect(throws: CollectiveError.peerTimeout(rank: 1, operation: "receive", seconds: 2)) {
                try await group.allreduce(buffer.buffer)
            }
            #expect(ContinuousClock.now - start < .seconds(4))
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
        try await expectPairSums(zero, rankOne, count: 10_000)
        #expect(!zero.sendsThroughSharedMemory, "rank 0 should have fallen back to inline payloads")
        #expect(rankOne.sendsThroughSharedMemory)
        try await closeBoth(zero, rankOne)
    }
}
