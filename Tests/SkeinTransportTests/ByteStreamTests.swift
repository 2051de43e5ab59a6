import Foundation
import Testing
@testable import SkeinTransport

/// A connected pair of byte streams over TCP loopback (both ends in this process).
func streamPair() async throws -> (StreamListener, ByteStream, ByteStream) {
    let listener = try StreamListener("tcp://127.0.0.1:0")
    let address = "tcp://127.0.0.1:\(try listener.boundPort())"
    async let accepted = listener.accept(timeout: .seconds(5))
    let dialed = try await ByteStream.dial(address, timeout: .seconds(5))
    return (listener, dialed, try await accepted)
}

/// Raw memory for a test, freed by the caller.
func bytes(_ n: Int, seed: UInt8) -> UnsafeMutableRawBufferPointer {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 16)
    for i in 0..<n { b[i] = UInt8(truncatingIfNeeded: i &* 131 &+ Int(seed) &+ i >> 9) }
    return b
}

/// A buffer handed to a child task; the parent awaits the task before freeing it.
struct SharedBytes: @unchecked Sendable { let buffer: UnsafeMutableRawBufferPointer }

/// The buffers of an `n`-byte exchange between two ends: what each sends (patterns from `seed`
/// and `seed + 1`) and zeroed room for what it receives. Freed by the caller (`deallocate`).
struct Exchange {
    let outA: SharedBytes, outB: SharedBytes, inA: SharedBytes, inB: SharedBytes
    let n: Int

    init(_ n: Int, seed: UInt8) {
        self.n = n
        outA = SharedBytes(buffer: bytes(n, seed: seed)); outB = SharedBytes(buffer: bytes(n, seed: seed + 1))
        inA = SharedBytes(buffer: bytes(n, seed: 0)); inB = SharedBytes(buffer: bytes(n, seed: 0))
    }

    /// Each end received exactly what the other sent.
    func expectEachGotTheOther() {
        #expect(memcmp(outA.buffer.baseAddress!, inB.buffer.baseAddress!, n) == 0)
        #expect(memcmp(outB.buffer.baseAddress!, inA.buffer.baseAddress!, n) == 0)
    }

    func deallocate() { for b in [outA, outB, inA, inB] { b.buffer.deallocate() } }
}

@Suite("Byte streams (nng stream API over tcp)")
struct ByteStreamTests {
    @Test("gathered writes arrive in scattered reads, 8 MiB both ways at once, in many partial transfers")
    func bothWays() async throws {
        let (_, a, b) = try await streamPair()
        let n = 8 << 20
        let x = Exchange(n, seed: 1)
        defer { x.deallocate() }
        let (oa, ob, ia, ib) = (x.outA, x.outB, x.inA, x.inB)
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Uneven pieces on both sides, so piece boundaries never line up with the kernel's.
            group.addTask { try await a.write([UnsafeRawBufferPointer(rebasing: oa.buffer[..<40]), UnsafeRawBufferPointer(rebasing: oa.buffer[40...])], timeout: .seconds(10)) }
            group.addTask { try await b.write([UnsafeRawBufferPointer(ob.buffer)], timeout: .seconds(10)) }
            group.addTask { try await b.read(into: [UnsafeMutableRawBufferPointer(rebasing: ib.buffer[..<1000]), UnsafeMutableRawBufferPointer(rebasing: ib.buffer[1000...])], timeout: .seconds(10)) }
            group.addTask { try await a.read(into: [ia.buffer], timeout: .seconds(10)) }
            try await group.waitForAll()
        }
        x.expectEachGotTheOther()
    }

    @Test("a read from a silent peer ends with .timedOut; a closed peer ends it with an error; a cancelled read with .cancelled")
    func failures() async throws {
        let (_, a, b) = try await streamPair()
        let buffer = bytes(64, seed: 0)
        defer { buffer.deallocate() }
        let slot = SharedBytes(buffer: buffer)
        let started = ContinuousClock.now
        await #expect(throws: TransportError(.timedOut, operation: "read")) {
            try await a.read(into: [slot.buffer], timeout: .milliseconds(200))
        }
        #expect(ContinuousClock.now - started < .seconds(2))

        let cancelled = Task { () async -> TransportError? in
            do { try await a.read(into: [slot.buffer], timeout: .seconds(30)); return nil } catch { return error as? TransportError }
        }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        #expect(await cancelled.value == TransportError(.cancelled, operation: "read"))

        b.close()
        let closedStart = ContinuousClock.now
        await #expect(throws: TransportError.self) { try await a.read(into: [slot.buffer], timeout: .seconds(30)) }
        #expect(ContinuousClock.now - closedStart < .seconds(2), "a closed peer is noticed at once, not at the deadline")
    }

    @Test("from plain threads: blocking reads while queued writes go out, 8 MiB both ways; a blocking wait covers the queued writes")
    func blockingBothWays() async throws {
        let (_, a, b) = try await streamPair()
        let n = 8 << 20
        let x = Exchange(n, seed: 3)
        defer { x.deallocate() }
        // Each thread queues its whole write in uneven pieces, then reads the other's in pieces
        // smaller than the kernel's buffers: neither may wait for its own write to finish first.
        func side(_ s: ByteStream, out: SharedBytes, into: SharedBytes) -> Thread {
            Thread {
                do {
                    var ticket: UInt64 = 0
                    for piece in stride(from: 0, to: n, by: 3 << 20) {
                        ticket = try s.enqueueWrite([UnsafeRawBufferPointer(rebasing: out.buffer[piece..<min(piece + (3 << 20), n)])], timeout: .seconds(10))
                    }
                    for piece in stride(from: 0, to: n, by: 1 << 20) {
                        try s.readBlocking(into: [UnsafeMutableRawBufferPointer(rebasing: into.buffer[piece..<min(piece + 40, n)]),
                                                  UnsafeMutableRawBufferPointer(rebasing: into.buffer[min(piece + 40, n)..<min(piece + (1 << 20), n)])],
                                           timeout: .seconds(10))
                    }
                    try s.waitForWritesBlocking(through: ticket)
                } catch {
                    Issue.record("blocking side failed: \(error)")
                }
            }
        }
        let threads = [side(a, out: x.outA, into: x.inA), side(b, out: x.outB, into: x.inB)]
        for t in threads { t.start() }
        while threads.contains(where: { !$0.isFinished }) { try await Task.sleep(for: .milliseconds(5)) }
        x.expectEachGotTheOther()
    }

    @Test("a blocking read from a silent peer ends with .timedOut at its deadline; from a closed peer at once")
    func blockingFailures() async throws {
        let (_, a, b) = try await streamPair()
        let buffer = bytes(64, seed: 0)
        defer { buffer.deallocate() }
        let started = ContinuousClock.now
        #expect(throws: TransportError(.timedOut, operation: "read")) {
            try a.readBlocking(into: [buffer], timeout: .milliseconds(200))
        }
        #expect(ContinuousClock.now - started >= .milliseconds(150) && ContinuousClock.now - started < .seconds(2))
        b.close()
        let closedStart = ContinuousClock.now
        #expect(throws: TransportError.self) { try a.readBlocking(into: [buffer], timeout: .seconds(30)) }
        #expect(ContinuousClock.now - closedStart < .seconds(2), "a closed peer is noticed at once, not at the deadline")
        // A failed write releases a blocking waiter too.
        let big = bytes(64 << 20, seed: 5)
        defer { big.deallocate() }
        let ticket = try? a.enqueueWrite([UnsafeRawBufferPointer(big)], timeout: .seconds(30))
        if let ticket {
            let waitStart = ContinuousClock.now
            #expect(throws: TransportError.self) { try a.waitForWritesBlocking(through: ticket) }
            #expect(ContinuousClock.now - waitStart < .seconds(5))
        }
    }

    @Test("dialing retries until something listens, and gives up with .connectionRefused at its deadline")
    func dialRetries() async throws {
        let probe = try StreamListener("tcp://127.0.0.1:0")
        let address = "tcp://127.0.0.1:\(try probe.boundPort())"
        probe.close()
        do {
            _ = try await ByteStream.dial(address, timeout: .milliseconds(200))
            Issue.record("dialed \(address), where nothing listens")
        } catch {
            #expect(error.code == .connectionRefused)
        }
        let dialing = Task { try await ByteStream.dial(address, timeout: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(200))
        let listener = try StreamListener(address)
        let accepted = try await listener.accept(timeout: .seconds(5))
        let dialed = try await dialing.value
        #expect(dialed.address == address && accepted.address == address)
    }
}
