import SkeinTensor
import SkeinTransport
import SkeinWire

#if !_endian(little)
#error("ring payloads travel as the host's little-endian bytes; big-endian hosts need byte-swapping copies")
#endif

/// The element types a ring sums: float32 (rounded; the ring fixes the order) and int64
/// (wrapping, exact in any order).
enum RingElement: Sendable {
    case float32, int64

    var size: Int { self == .float32 ? 4 : 8 }
    var dtype: UInt8 { self == .float32 ? TensorFrameHeader.float32 : TensorFrameHeader.int64 }

    /// dst += src over `count` elements.
    func add(_ src: UnsafeRawPointer, into dst: UnsafeMutableRawPointer, count: Int) {
        // Frame payloads sit 40 bytes into nng's buffer, window slots are 64-byte aligned and
        // stream payloads land in a reused buffer: aligned for either type, read in place.
        switch self {
        case .float32: Vectorized.add(src.assumingMemoryBound(to: Float.self), into: dst.assumingMemoryBound(to: Float.self), count: count)
        case .int64: Vectorized.add(src.assumingMemoryBound(to: Int64.self), into: dst.assumingMemoryBound(to: Int64.self), count: count)
        }
    }
}

/// How a rank reaches one neighbour of its ring. A link carries tensor frames both ways (the
/// close handshake runs backwards); one send and one receive at a time.
///
/// - `MessageLink`: an nng pair socket, one message per frame. For `ipc://` (ranks on one
///   host), where payloads mostly sit in a shared window and frames are headers.
/// - `StreamLink`: an nng byte stream (`tcp://`), frames written back to back: the payload
///   goes from the tensor to the kernel and back without being copied into an nng message.
protocol RingLink: AnyObject, Sendable {
    /// The neighbour's rank, for errors.
    var peer: Int { get }
    /// Sends one frame: `header`, then `payload` unless the header points into a shared window.
    /// `payload` must stay unchanged until this returns.
    func send(_ header: TensorFrameHeader, payload: UnsafeRawBufferPointer) async throws(CollectiveError)
    /// Receives one frame of `destination.count` elements, added into or copied to
    /// `destination`. `check` validates the header before any payload is used and returns the
    /// payload's bytes when the header points into a shared window.
    func receive(into destination: RingBuffer, add: Bool,
                 check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) async throws(CollectiveError)
    /// `receive` on the calling thread (for `RingGroup.allreduceBlocking`).
    func receiveBlocking(into destination: RingBuffer, add: Bool,
                         check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) throws(CollectiveError)
    /// Ends the link: a dialing side first, then the listening side once the peer hung up
    /// (`waitForHangUp`).
    func close()
    /// Waits until the peer closed its end (or `timeout` passes); whether it did.
    func waitForHangUp(timeout: Duration) async -> Bool
}

/// Moves a frame's payload into place: adds or copies `source` into `destination`.
func deliver(_ source: UnsafeRawBufferPointer, into destination: RingBuffer, add: Bool) {
    guard destination.count > 0 else { return }
    if add {
        destination.element.add(source.baseAddress!, into: destination.base!, count: destination.count)
    } else {
        destination.base!.copyMemory(from: source.baseAddress!, byteCount: destination.bytes.count)
    }
}

/// Maps a transport failure on the link to `peer` to the collective's error.
func collectiveError(_ e: TransportError, peer: Int, operation: String, timeout: Duration) -> CollectiveError {
    switch e.code {
    case .timedOut: .peerTimeout(rank: peer, operation: operation, seconds: seconds(timeout))
    case .cancelled: .cancelled
    default: .peerFailed(rank: peer, operation: operation, detail: e.description)
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// A ring link over an nng pair socket: one message per frame.
final class MessageLink: RingLink {
    let socket: Socket
    let peer: Int
    let timeout: Duration

    init(socket: Socket, peer: Int, timeout: Duration) {
        self.socket = socket; self.peer = peer; self.timeout = timeout
    }

    func send(_ header: TensorFrameHeader, payload: UnsafeRawBufferPointer) async throws(CollectiveError) {
        do {
            try await socket.send(try message(header, payload: payload), timeout: timeout)
        } catch {
            throw collectiveError(error, peer: peer, operation: "send", timeout: timeout)
        }
    }

    func receive(into destination: RingBuffer, add: Bool,
                 check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) async throws(CollectiveError) {
        let m: Message
        do {
            m = try await socket.receive(timeout: timeout)
        } catch {
            throw collectiveError(error, peer: peer, operation: "receive", timeout: timeout)
        }
        try take(m, into: destination, add: add, check: check)
    }

    /// `send` on the calling thread (for `RingGroup.allreduceBlocking`).
    func sendBlocking(_ header: TensorFrameHeader, payload: UnsafeRawBufferPointer) throws(CollectiveError) {
        do {
            try socket.sendBlocking(try message(header, payload: payload), timeout: timeout)
        } catch {
            throw collectiveError(error, peer: peer, operation: "send", timeout: timeout)
        }
    }

    /// `receive` on the calling thread.
    func receiveBlocking(into destination: RingBuffer, add: Bool,
                         check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) throws(CollectiveError) {
        let m: Message
        do {
            m = try socket.receiveBlocking(timeout: timeout)
        } catch {
            throw collectiveError(error, peer: peer, operation: "receive", timeout: timeout)
        }
        try take(m, into: destination, add: add, check: check)
    }

    private func message(_ header: TensorFrameHeader, payload: UnsafeRawBufferPointer) throws(TransportError) -> Message {
        var m = try Message(count: header.frameSize)
        m.withUnsafeMutableBytes { body in
            header.write(into: body)
            if header.shared == nil && payload.count > 0 {
                (body.baseAddress! + TensorFrameHeader.size).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            }
        }
        return m
    }

    private func take(_ m: borrowing Message, into destination: RingBuffer, add: Bool,
                      check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) throws(CollectiveError) {
        let peer = self.peer
        try m.withUnsafeBytes { (frame) throws(CollectiveError) in
            let h: TensorFrameHeader
            do throws(WireError) { h = try TensorFrameHeader.decode(frame) } catch { throw .malformed(rank: peer, error) }
            let shared = try check(h)
            deliver(shared ?? UnsafeRawBufferPointer(rebasing: frame[TensorFrameHeader.size...]), into: destination, add: add)
        }
    }

    func close() { socket.close() }

    func waitForHangUp(timeout: Duration) async -> Bool { await socket.waitUntilDisconnected(timeout: timeout) }
}

/// A ring link over an nng byte stream: header and payload written back to back straight from
/// the tensor; the receiver reads the header with the payload it expects, directly into place
/// (a copy) or into a reused buffer it adds from, and checks the header.
///
/// `@unchecked Sendable`: `headerIn` and `scratch` are touched only by the one receive at a
/// time (`RingLink`'s contract); each queued frame has its own header copy.
final class StreamLink: RingLink, @unchecked Sendable {
    let stream: ByteStream
    let peer: Int
    let timeout: Duration
    /// The largest payload a frame may announce (the group's frame size).
    let maxFloats: Int
    private let headerIn = UnsafeMutableRawBufferPointer.allocate(byteCount: TensorFrameHeader.size, alignment: 8)
    private var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)

    init(stream: ByteStream, peer: Int, timeout: Duration, maxFloats: Int) {
        self.stream = stream; self.peer = peer; self.timeout = timeout; self.maxFloats = maxFloats
    }

    deinit {
        headerIn.deallocate()
        scratch.deallocate()
    }

    func send(_ header: TensorFrameHeader, payload: UnsafeRawBufferPointer) async throws(CollectiveError) {
        try await waitForSends(through: enqueueSend(header, payload: payload))
    }

    /// Queues a frame and returns at once with its ticket: the header is copied, the payload
    /// is written straight from the tensor, which must stay unchanged until `waitForSends`
    /// covers the ticket. Frames go out in order while the caller receives.
    func enqueueSend(_ header: TensorFrameHeader, payload: UnsafeRawBufferPointer) throws(CollectiveError) -> UInt64 {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: TensorFrameHeader.size, alignment: 8)
        header.write(into: bytes)
        do {
            return try stream.enqueueWrite([UnsafeRawBufferPointer(bytes), header.shared == nil ? payload : UnsafeRawBufferPointer(start: nil, count: 0)],
                                           timeout: timeout, owned: bytes)
        } catch {
            bytes.deallocate()
            throw collectiveError(error, peer: peer, operation: "send", timeout: timeout)
        }
    }

    /// Waits until the frames up to `ticket` are written (handed to the kernel).
    func waitForSends(through ticket: UInt64) async throws(CollectiveError) {
        do {
            try await stream.waitForWrites(through: ticket)
        } catch {
            throw collectiveError(error, peer: peer, operation: "send", timeout: timeout)
        }
    }

    func receive(into destination: RingBuffer, add: Bool,
                 check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) async throws(CollectiveError) {
        let payload = landing(for: destination, add: add)
        do {
            try await stream.read(into: [headerIn, payload], timeout: timeout)
        } catch {
            throw failedRead(error, check: check)
        }
        try take(payload, into: destination, add: add, check: check)
    }

    /// `receive` on the calling thread (`ByteStream.readBlocking`).
    func receiveBlocking(into destination: RingBuffer, add: Bool,
                         check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) throws(CollectiveError) {
        let payload = landing(for: destination, add: add)
        do {
            try stream.readBlocking(into: [headerIn, payload], timeout: timeout)
        } catch {
            throw failedRead(error, check: check)
        }
        try take(payload, into: destination, add: add, check: check)
    }

    /// `waitForSends` on the calling thread.
    func waitForSendsBlocking(through ticket: UInt64) throws(CollectiveError) {
        do {
            try stream.waitForWritesBlocking(through: ticket)
        } catch {
            throw collectiveError(error, peer: peer, operation: "send", timeout: timeout)
        }
    }

    /// Where a frame's payload is read to: `destination` itself for a copy, the reused scratch
    /// buffer for an add. Clears the header buffer, so no stale header survives a failed read.
    ///
    /// The header and the payload the receiver expects are read in one go (one wake-up per
    /// frame, not two). Nothing is written outside `destination` or `scratch`; if the header
    /// then turns out wrong, the collective fails, and a failed collective's buffer holds no
    /// defined values anyway.
    private func landing(for destination: RingBuffer, add: Bool) -> UnsafeMutableRawBufferPointer {
        headerIn.initializeMemory(as: UInt8.self, repeating: 0)
        guard add else { return destination.bytes }
        let bytes = destination.bytes.count
        if scratch.count < bytes {
            scratch.deallocate()
            scratch = .allocate(byteCount: bytes, alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: scratch[..<bytes])
    }

    /// The collective's error for a failed read. A frame shorter than expected leaves the read
    /// waiting for bytes that never come: when its header did arrive, what is wrong with it
    /// says more than the timeout.
    private func failedRead(_ error: TransportError,
                            check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) -> CollectiveError {
        if let h = try? TensorFrameHeader.decodeHeader(UnsafeRawBufferPointer(headerIn), maxCount: maxFloats), h.shared == nil {
            do throws(CollectiveError) { _ = try check(h) } catch { return error }
        }
        return collectiveError(error, peer: peer, operation: "receive", timeout: timeout)
    }

    /// Checks the header of a frame read whole, then adds its payload if it was read aside.
    private func take(_ payload: UnsafeMutableRawBufferPointer, into destination: RingBuffer, add: Bool,
                      check: (TensorFrameHeader) throws(CollectiveError) -> UnsafeRawBufferPointer?) throws(CollectiveError) {
        let h: TensorFrameHeader
        do throws(WireError) { h = try TensorFrameHeader.decodeHeader(UnsafeRawBufferPointer(headerIn), maxCount: maxFloats) } catch {
            throw .malformed(rank: peer, error)
        }
        // A stream carries every payload in its frames; a header pointing elsewhere is malformed.
        if let shared = h.shared { throw .malformed(rank: peer, .invalidValue(field: "shared", value: UInt64(shared.generation))) }
        _ = try check(h)
        if add { deliver(UnsafeRawBufferPointer(payload), into: destination, add: true) }
    }

    func close() { stream.close() }

    /// A stream has no reconnecting dialer to race with: after the close handshake either end
    /// may close at once.
    func waitForHangUp(timeout: Duration) async -> Bool { true }
}
