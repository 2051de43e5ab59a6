import CNNG
import Synchronization

/// An nng socket with an async API.
///
/// Thread-safety: all methods may be called from any task concurrently; nng serialises
/// access internally. `send`/`receive` suspend on `nng_aio` completions, never block a thread,
/// honour task cancellation (`.cancelled`) and a per-call timeout (`.timedOut`).
public final class Socket: Sendable {
    /// Options applied when the socket opens.
    public struct Options: Sendable {
        /// Largest message accepted, in bytes. Larger incoming messages make nng drop the
        /// connection (stream transports); larger outgoing messages are refused by `send`.
        public var maxMessageSize: Int
        /// Default deadline for `send` and `receive` when the call gives none.
        public var defaultTimeout: Duration?
        /// Dialer back-off: first retry after `reconnectMin`, doubling up to `reconnectMax`.
        public var reconnectMin: Duration
        public var reconnectMax: Duration

        public init(maxMessageSize: Int = 256 << 20, defaultTimeout: Duration? = .seconds(30),
                    reconnectMin: Duration = .milliseconds(50), reconnectMax: Duration = .seconds(2)) {
            self.maxMessageSize = maxMessageSize
            self.defaultTimeout = defaultTimeout
            self.reconnectMin = reconnectMin
            self.reconnectMax = reconnectMax
        }
    }

    public let pattern: Pattern
    public let options: Options
    let raw: nng_socket
    private let isClosed = Atomic<Bool>(false)
    let aios = AIOPool()
    private let links = LinkCounter()

    public init(_ pattern: Pattern, options: Options = Options()) throws(TransportError) {
        self.pattern = pattern
        self.options = options
        raw = try pattern.open()
        do throws(TransportError) {
            try check(nng_socket_set_size(raw, NNG_OPT_RECVMAXSZ, options.maxMessageSize), "set maximum message size")
            try check(nng_socket_set_ms(raw, NNG_OPT_RECONNMINT, nngDuration(options.reconnectMin)), "set reconnect time")
            try check(nng_socket_set_ms(raw, NNG_OPT_RECONNMAXT, nngDuration(options.reconnectMax)), "set reconnect time")
            // Counted for `waitUntilDisconnected`; nng calls these on its own threads.
            // Retained for good (a few bytes per socket ever opened): nng may still run a
            // pipe-removal callback after `nng_close` returned, and a counter freed with the
            // socket would then be written after free (seen as heap corruption: crashes in
            // libdispatch and in nng's own mutexes).
            let counter = Unmanaged.passRetained(links).toOpaque()
            try check(nng_pipe_notify(raw, NNG_PIPE_EV_ADD_POST, linkEvent, counter), "watch connections")
            try check(nng_pipe_notify(raw, NNG_PIPE_EV_REM_POST, linkEvent, counter), "watch connections")
            if pattern == .subscribe {
                // Subscribe to everything; topic filtering is not a feature Skein needs.
                try check(nng_socket_set(raw, NNG_OPT_SUB_SUBSCRIBE, nil, 0), "subscribe")
            }
        } catch {
            nng_close(raw)
            throw error
        }
    }

    deinit { close() }

    /// Closes the socket; pending operations end with `.closed`. Idempotent.
    ///
    /// On an nng completion thread (a task under `CompletionExecutor` that closed the socket or
    /// dropped its last reference) the close runs on another thread, moments later: `nng_close`
    /// waits for running callbacks, this one included.
    public func close() {
        if !isClosed.exchange(true, ordering: .acquiringAndReleasing) {
            let (raw, aios) = (self.raw, self.aios)
            CompletionThread.offCompletionThread {
                aios.quiesce()
                nng_close(raw)
                aios.close()
            }
        }
    }

    /// Listens on `address` (`inproc://`, `ipc://`, `tcp://`, `tls+tcp://`). For
    /// `tls+tcp://`, `tls` must name at least a certificate and key.
    @discardableResult
    public func listen(_ address: String, tls: TLSConfiguration? = nil) throws(TransportError) -> Listener {
        var l = nng_listener()
        try check(nng_listener_create(&l, raw, address), "listen", address: address)
        do throws(TransportError) {
            if let tls {
                let cfg = try tls.make(server: true, address: address)
                defer { nng_tls_config_free(cfg) }
                try check(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(cfg)), "listen", address: address)
            }
            try check(nng_listener_start(l, 0), "listen", address: address)
        } catch {
            nng_listener_close(l)
            throw error
        }
        return Listener(raw: l, address: address)
    }

    /// Dials `address`. The dialer connects in the background and reconnects by itself
    /// with exponential back-off (`Options.reconnectMin` … `reconnectMax`) whenever the link
    /// drops, so this returns at once even if nobody listens yet.
    @discardableResult
    public func dial(_ address: String, tls: TLSConfiguration? = nil) throws(TransportError) -> Dialer {
        var d = nng_dialer()
        try check(nng_dialer_create(&d, raw, address), "dial", address: address)
        do throws(TransportError) {
            if let tls {
                let cfg = try tls.make(server: false, address: address)
                defer { nng_tls_config_free(cfg) }
                try check(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(cfg)), "dial", address: address)
            }
            try check(nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, nngDuration(options.reconnectMin)), "dial", address: address)
            try check(nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, nngDuration(options.reconnectMax)), "dial", address: address)
            try check(nng_dialer_start(d, Int32(NNG_FLAG_NONBLOCK)), "dial", address: address)
        } catch {
            nng_dialer_close(d)
            throw error
        }
        return Dialer(raw: d, address: address)
    }

    /// Sends `message`, handing its buffer to nng. A nil `timeout` means `Options.defaultTimeout`.
    /// Throws `.messageTooLarge` without sending when the message exceeds `maxMessageSize`.
    public func send(_ message: consuming Message, timeout: Duration? = nil) async throws(TransportError) {
        if Task.isCancelled { throw TransportError(.cancelled, operation: "send") }
        let limit = options.maxMessageSize
        if message.count > limit {
            throw TransportError(.messageTooLarge(size: message.count, limit: limit), operation: "send")
        }
        let socket = raw
        guard pattern.keepsStateOnFailedSend else {
            return try await sendAIO(message, pool: aios, timeout: timeout ?? options.defaultTimeout, operation: "send") { nng_send_aio(socket, $0) }
        }
        // Fast path: if nng can take the message right now, no aio and no thread hop.
        guard aios.enter() else { throw TransportError(.closed, operation: "send") }
        let msg = message.release()
        let rv = nng_sendmsg(raw, msg, Int32(NNG_FLAG_NONBLOCK))
        aios.leave()
        if rv == 0 { return }
        message = Message(taking: msg)
        if !Self.wouldBlock(rv) { throw TransportError.fromNNG(rv, operation: "send") }
        try await sendAIO(message, pool: aios, timeout: timeout ?? options.defaultTimeout, operation: "send") { nng_send_aio(socket, $0) }
    }

    /// Receives the next message. A nil `timeout` means `Options.defaultTimeout`.
    public func receive(timeout: Duration? = nil) async throws(TransportError) -> Message {
        if Task.isCancelled { throw TransportError(.cancelled, operation: "receive") }
        let socket = raw
        // Fast path: a message already queued is taken without an aio or a thread hop.
        if pattern.keepsStateOnFailedReceive {
            guard aios.enter() else { throw TransportError(.closed, operation: "receive") }
            var msg: OpaquePointer?
            let rv = nng_recvmsg(raw, &msg, Int32(NNG_FLAG_NONBLOCK))
            aios.leave()
            if rv == 0, let msg { return Message(taking: msg) }
            if !Self.wouldBlock(rv) { throw TransportError.fromNNG(rv, operation: "receive") }
        }
        return try await receiveAIO(pool: aios, timeout: timeout ?? options.defaultTimeout, operation: "receive") { nng_recv_aio(socket, $0) }
    }

    /// Sends `message`, blocking the calling thread until nng took it (or `timeout`; nil means
    /// `Options.defaultTimeout`). For a plain thread with nothing else to do meanwhile, as
    /// MPI's blocking calls are used: the thread waits on the operation itself, so a completion
    /// costs one wake-up and no task hand-off. Never call it from a task (it would hold a
    /// thread of Swift's small pool). Closing the socket meanwhile ends it with `.closed`.
    public func sendBlocking(_ message: consuming Message, timeout: Duration? = nil) throws(TransportError) {
        let limit = options.maxMessageSize
        if message.count > limit {
            throw TransportError(.messageTooLarge(size: message.count, limit: limit), operation: "send")
        }
        let msg = message.release()
        let rv = blocking(timeout: timeout) { aio in
            nng_aio_set_msg(aio, msg)
            nng_send_aio(raw, aio)
        }
        if rv != 0 {
            nng_msg_free(msg) // on failure the message is still ours
            throw TransportError.fromNNG(rv, operation: "send")
        }
    }

    /// Receives the next message, blocking the calling thread (see `sendBlocking`).
    public func receiveBlocking(timeout: Duration? = nil) throws(TransportError) -> Message {
        var msg: OpaquePointer?
        let rv = blocking(timeout: timeout) { aio in nng_recv_aio(raw, aio) } finish: { aio in msg = nng_aio_get_msg(aio) }
        if rv != 0 { throw TransportError.fromNNG(rv, operation: "receive") }
        return Message(taking: msg!)
    }

    /// Runs one nng operation on a callback-free aio and waits for it on this thread.
    private func blocking(timeout: Duration?, submit: (OpaquePointer) -> Void,
                          finish: (OpaquePointer) -> Void = { _ in }) -> Int32 {
        var a: OpaquePointer?
        let allocated = nng_aio_alloc(&a, nil, nil)
        guard allocated == 0, let aio = a else { return allocated }
        defer { nng_aio_free(aio) }
        nng_aio_set_timeout(aio, nngDuration(timeout ?? options.defaultTimeout))
        guard aios.enter() else { return Int32(NNG_ECLOSED.rawValue) }
        submit(aio)
        aios.leave()
        nng_aio_wait(aio)
        let rv = nng_aio_result(aio)
        if rv == 0 { finish(aio) }
        return rv
    }

    /// Connections (nng pipes) currently established.
    public var connectionCount: Int { max(links.count.load(ordering: .acquiring), 0) }

    /// Waits until no peer is connected, or `timeout` passes; returns whether it got there.
    ///
    /// For orderly teardown: nng 1.5.2 can hang in `nng_close` on a dialing socket whose peer
    /// closed its listener first (the dialer starts reconnecting while it is being closed).
    /// A listening side that waits here until its peers hung up avoids that race.
    public func waitUntilDisconnected(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while connectionCount > 0 {
            if ContinuousClock.now >= deadline || Task.isCancelled { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return true
    }

    /// Whether a non-blocking attempt failed only because it could not complete at once. nng
    /// reports that as NNG_EAGAIN, or sometimes as NNG_ETIMEDOUT (its zero-timeout aio can
    /// expire first; nanomsg/nng#1365): both mean "take the slow path", never "timed out".
    static func wouldBlock(_ rv: Int32) -> Bool {
        UInt32(rv) == NNG_EAGAIN.rawValue || UInt32(rv) == NNG_ETIMEDOUT.rawValue
    }

    /// Opens an independent context: its own request/reply state over this socket, so many
    /// requests can be outstanding at once (request, reply and subscribe patterns only).
    public func makeContext() throws(TransportError) -> Context {
        guard pattern.supportsContexts else {
            throw TransportError(.protocolState, operation: "open context on \(pattern.rawValue) socket")
        }
        var c = nng_ctx()
        try check(nng_ctx_open(&c, raw), "open context")
        return Context(raw: c, socket: self)
    }

    /// The TCP port a `tcp://HOST:0` listener was bound to.
    public func boundPort(of listener: Listener) throws(TransportError) -> Int {
        var port: Int32 = 0
        try check(nng_listener_get_int(listener.raw, NNG_OPT_TCP_BOUND_PORT, &port), "bound port", address: listener.address)
        return Int(port)
    }
}

/// Established connections of one socket. The pipe callbacks hold a reference that is never
/// released (see `Socket.init`): nng gives no point after which they can no longer run.
final class LinkCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// nng calls this on its own thread (file scope: see `aioCompleted`).
private func linkEvent(_ pipe: nng_pipe, _ event: nng_pipe_ev, _ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    let counter = Unmanaged<LinkCounter>.fromOpaque(arg).takeUnretainedValue()
    if event == NNG_PIPE_EV_ADD_POST {
        counter.count.add(1, ordering: .acquiringAndReleasing)
    } else if event == NNG_PIPE_EV_REM_POST {
        counter.count.subtract(1, ordering: .acquiringAndReleasing)
    }
}

/// A started listener; closing it stops accepting and drops its connections.
public struct Listener: Sendable {
    let raw: nng_listener
    public let address: String
    public func close() { nng_listener_close(raw) }
}

/// A started dialer; closing it stops reconnecting and drops its connection.
public struct Dialer: Sendable {
    let raw: nng_dialer
    public let address: String
    public func close() { nng_dialer_close(raw) }
}

/// Shared by sockets and contexts: send a message through an aio, handing over its buffer.
func sendAIO(_ message: consuming Message, pool: AIOPool, timeout: Duration?, operation: String,
             submit: (OpaquePointer) -> Void) async throws(TransportError) {
    let msg = message.release()
    try await withAIO(from: pool, timeout: timeout) { aio in
        nng_aio_set_msg(aio, msg)
        submit(aio)
    } finish: { aio, rv throws(TransportError) in
        if rv != 0 {
            // On failure the message is still ours.
            nng_msg_free(msg)
            throw TransportError.fromNNG(rv, operation: operation)
        }
    }
}

/// Shared by sockets and contexts: receive a message through an aio.
func receiveAIO(pool: AIOPool, timeout: Duration?, operation: String,
                submit: (OpaquePointer) -> Void) async throws(TransportError) -> Message {
    try await withAIO(from: pool, timeout: timeout, submit: submit) { aio, rv throws(TransportError) -> Message in
        if rv != 0 { throw TransportError.fromNNG(rv, operation: operation) }
        return Message(taking: nng_aio_get_msg(aio))
    }
}
