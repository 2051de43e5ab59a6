import CNNG
import Synchronization

/// An nng context: independent protocol state over a shared socket. A request context
/// matches one reply to one request; a reply context answers the request it received.
/// Use one context per concurrent conversation; a context itself is not for concurrent use.
public final class Context: Sendable {
    let raw: nng_ctx
    /// Keeps the socket open while the context lives.
    public let socket: Socket
    private let isClosed = Atomic<Bool>(false)

    init(raw: nng_ctx, socket: Socket) {
        self.raw = raw
        self.socket = socket
    }

    deinit { close() }

    /// Closes the context; on an nng completion thread, from another thread (see `Socket.close`).
    public func close() {
        if !isClosed.exchange(true, ordering: .acquiringAndReleasing) {
            let raw = self.raw
            CompletionThread.offCompletionThread { nng_ctx_close(raw) }
        }
    }

    public func send(_ message: consuming Message, timeout: Duration? = nil) async throws(TransportError) {
        let limit = socket.options.maxMessageSize
        if message.count > limit {
            throw TransportError(.messageTooLarge(size: message.count, limit: limit), operation: "send")
        }
        let ctx = raw
        try await sendAIO(message, pool: socket.aios, timeout: timeout ?? socket.options.defaultTimeout, operation: "send") { nng_ctx_send(ctx, $0) }
    }

    public func receive(timeout: Duration? = nil) async throws(TransportError) -> Message {
        let ctx = raw
        return try await receiveAIO(pool: socket.aios, timeout: timeout ?? socket.options.defaultTimeout, operation: "receive") { nng_ctx_recv(ctx, $0) }
    }

    /// Sends a request and awaits its reply (request pattern). The deadline covers both.
    public func request(_ message: consuming Message, timeout: Duration? = nil) async throws(TransportError) -> Message {
        let t = timeout ?? socket.options.defaultTimeout
        let start = ContinuousClock.now
        try await send(message, timeout: t)
        let remaining: Duration? = t.map { max($0 - (ContinuousClock.now - start), .milliseconds(1)) }
        return try await receive(timeout: remaining)
    }
}
