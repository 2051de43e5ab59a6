import Dispatch
import CNNG
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A connected byte stream through nng's stream API (`tcp://`): no scalability protocol and no
/// message framing, so a link whose two ends frame their own data moves bulk bytes straight
/// between its own memory and the kernel. A pair socket copies every payload into an nng
/// message, and its pipe machinery adds thread hand-offs per message; for the ring allreduce
/// over TCP that was about half of Open MPI's bandwidth at 4 MiB (`benchmarks/RESULTS.md`).
///
/// There is no reconnection: a broken connection ends every later read and write with an
/// error, and the owner (a collective group) fails and is formed again.
///
/// At most one read and one write at a time; a read and a write may run concurrently.
public final class ByteStream: Sendable {
    private let handle: StreamHandle
    private let reader: StreamReader
    private let writer: StreamWriter
    public let address: String

    init(handle: StreamHandle, address: String) throws(TransportError) {
        self.handle = handle
        self.address = address
        _ = nng_stream_set_bool(handle.raw, NNG_OPT_TCP_NODELAY, true) // frame headers must not wait for Nagle
        reader = try StreamReader(stream: handle)
        writer = try StreamWriter(stream: handle)
    }

    /// Connects to `address` (`tcp://HOST:PORT`), retrying while nothing listens there yet,
    /// until `timeout` passes.
    public static func dial(_ address: String, timeout: Duration) async throws(TransportError) -> ByteStream {
        var d: OpaquePointer?
        try check(nng_stream_dialer_alloc(&d, address), "dial", address: address)
        defer { nng_stream_dialer_free(d) }
        let deadline = ContinuousClock.now + timeout
        let pool = AIOPool()
        defer { pool.close() }
        while true {
            do {
                let handle = try await withAIO(from: pool, timeout: timeout) { aio in nng_stream_dialer_dial(d, aio) } finish: {
                    aio, rv throws(TransportError) -> StreamHandle in
                    if rv != 0 { throw TransportError.fromNNG(rv, operation: "dial", address: address) }
                    return StreamHandle(raw: OpaquePointer(nng_aio_get_output(aio, 0)!))
                }
                return try ByteStream(handle: handle, address: address)
            } catch where error.code == .connectionRefused && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
                if Task.isCancelled { throw TransportError(.cancelled, operation: "dial", address: address) }
            }
        }
    }

    /// Writes all of `parts`, in order (gathered: nothing is copied first). Throws if the
    /// connection fails, or no byte could be written for `timeout` (nil: never times out).
    /// The memory must stay valid and unchanged until this returns.
    public func write(_ parts: [UnsafeRawBufferPointer], timeout: Duration?) async throws(TransportError) {
        let ticket = try enqueueWrite(parts, timeout: timeout)
        try await waitForWrites(through: ticket)
    }

    /// Queues a write of all of `parts` and returns at once with its ticket; queued writes go
    /// out in order, driven by nng's completions, while the caller does other things (reads).
    /// `owned`, if given, is deallocated once the write is over. The memory of `parts` must stay
    /// valid and unchanged until `waitForWrites(through:)` covers the ticket. Throws at once if
    /// an earlier write failed (the stream is then broken for good).
    public func enqueueWrite(_ parts: [UnsafeRawBufferPointer], timeout: Duration?,
                             owned: UnsafeMutableRawBufferPointer? = nil) throws(TransportError) -> UInt64 {
        try writer.enqueue(parts.filter { $0.count > 0 }.map { UnsafeMutableRawBufferPointer(mutating: $0) }, timeout: timeout, owned: owned)
    }

    /// Waits until every write up to and including `ticket` is done; throws if one failed.
    /// Cancelling the waiting task aborts the write in progress (and so the stream's writes).
    public func waitForWrites(through ticket: UInt64) async throws(TransportError) {
        try await writer.wait(through: ticket)
    }

    /// Reads exactly enough bytes to fill `parts`, in order (scattered; same failures as `write`).
    public func read(into parts: [UnsafeMutableRawBufferPointer], timeout: Duration?) async throws(TransportError) {
        try await reader.run(parts.filter { $0.count > 0 }, timeout: timeout, operation: "read")
    }

    /// `read` on the calling thread, for a plain thread with nothing else to do meanwhile: each
    /// transfer wakes this thread directly (nng skips its callback threads for an aio without a
    /// callback), and bytes already buffered are read without any wake-up. Not from a task on
    /// Swift's pool. Not at the same time as `read`.
    public func readBlocking(into parts: [UnsafeMutableRawBufferPointer], timeout: Duration?) throws(TransportError) {
        try reader.runBlocking(parts.filter { $0.count > 0 }, timeout: timeout, operation: "read")
    }

    /// `waitForWrites` on the calling thread (no cancellation: the writes' timeout bounds it).
    public func waitForWritesBlocking(through ticket: UInt64) throws(TransportError) {
        try writer.waitBlocking(through: ticket)
    }

    /// Ends the connection; reads and writes in progress fail with `.closed`.
    public func close() { nng_stream_close(handle.raw) }

    deinit {
        nng_stream_close(handle.raw)
        reader.stop()
        writer.stop()
        nng_stream_free(handle.raw)
    }
}

/// A listening address for byte streams; `accept` takes the next connection.
public final class StreamListener: Sendable {
    private let handle: StreamHandle
    private let pool = AIOPool()
    public let address: String

    /// Listens on `address` (`tcp://HOST:PORT`).
    public init(_ address: String) throws(TransportError) {
        var l: OpaquePointer?
        try check(nng_stream_listener_alloc(&l, address), "listen", address: address)
        let rv = nng_stream_listener_listen(l)
        if rv != 0 {
            nng_stream_listener_free(l)
            throw TransportError.fromNNG(rv, operation: "listen", address: address)
        }
        handle = StreamHandle(raw: l!)
        self.address = address
    }

    /// The next connection, or `.timedOut` after `timeout`.
    public func accept(timeout: Duration) async throws(TransportError) -> ByteStream {
        let raw = handle.raw, address = self.address
        let accepted = try await withAIO(from: pool, timeout: timeout) { aio in nng_stream_listener_accept(raw, aio) } finish: {
            aio, rv throws(TransportError) -> StreamHandle in
            if rv != 0 { throw TransportError.fromNNG(rv, operation: "accept", address: address) }
            return StreamHandle(raw: OpaquePointer(nng_aio_get_output(aio, 0)!))
        }
        return try ByteStream(handle: accepted, address: address)
    }

    /// The TCP port a `tcp://HOST:0` listener was bound to.
    public func boundPort() throws(TransportError) -> Int {
        var port: Int32 = 0
        try check(nng_stream_listener_get_int(handle.raw, NNG_OPT_TCP_BOUND_PORT, &port), "bound port", address: address)
        return Int(port)
    }

    /// Stops listening; later connection attempts are refused.
    public func close() { nng_stream_listener_close(handle.raw) }

    deinit {
        nng_stream_listener_close(handle.raw)
        pool.close()
        nng_stream_listener_free(handle.raw)
    }
}

/// An nng stream, listener pointer. `@unchecked Sendable`: nng's stream functions are
/// thread-safe, and the owner frees the pointer only in its `deinit`, when nothing else has it.
struct StreamHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

/// The writing side of a `ByteStream`: a queue of writes, each a list of buffers, done in order
/// by one aio that resubmits itself on nng's thread after each partial transfer and starts the
/// next queued write when one is over. Nothing waits for a write unless a caller asks to.
///
/// `@unchecked Sendable`: `state` is behind a mutex. `current` (the parts still to write of the
/// write in progress) is touched only by whoever started that write and then by the callback
/// chain, one at a time: a write starts only when `state.busy` was false (under the mutex), and
/// nng orders a submission before its completion.
final class StreamWriter: @unchecked Sendable {
    private(set) var aio: OpaquePointer!
    private let stream: StreamHandle
    /// `@unchecked Sendable`: the pointers are to memory the enqueuer keeps valid and unchanged
    /// until the write is over (the `enqueueWrite` contract); only the writer reads it.
    private struct Item: @unchecked Sendable {
        var parts: [UnsafeMutableRawBufferPointer]
        let timeout: nng_duration
        let owned: UnsafeMutableRawBufferPointer?
    }
    private struct State {
        var queue: [Item] = []
        var busy = false
        var enqueued: UInt64 = 0
        var completed: UInt64 = 0
        var failure: Int32 = 0
        var waiters: [(ticket: UInt64, continuation: UnsafeContinuation<Void, Never>)] = []
        var blockedWaiters: [(ticket: UInt64, semaphore: DispatchSemaphore)] = []
    }
    private let state = Mutex(State())
    private var current: Item?

    init(stream: StreamHandle) throws(TransportError) {
        self.stream = stream
        var a: OpaquePointer?
        try check(nng_aio_alloc(&a, streamWriteProgressed, Unmanaged.passUnretained(self).toOpaque()), "allocate aio")
        aio = a
    }

    /// Waits for any callback in progress, then frees the aio (and what queued writes own).
    /// Not from a completion callback.
    func stop() {
        nng_aio_stop(aio)
        nng_aio_free(aio)
        let left = state.withLock { s -> [Item] in defer { s.queue = [] }; return s.queue }
        for item in left + (current.map { [$0] } ?? []) { item.owned?.deallocate() }
        current = nil
    }

    func enqueue(_ parts: [UnsafeMutableRawBufferPointer], timeout: Duration?,
                 owned: UnsafeMutableRawBufferPointer?) throws(TransportError) -> UInt64 {
        let item = Item(parts: parts, timeout: nngDuration(timeout), owned: owned)
        let (ticket, start): (UInt64, Bool) = try state.withLock { (s) throws(TransportError) -> (UInt64, Bool) in
            if s.failure != 0 { throw TransportError.fromNNG(s.failure, operation: "write") }
            s.enqueued += 1
            if parts.isEmpty && !s.busy && s.queue.isEmpty { s.completed += 1; return (s.enqueued, false) }
            if s.busy { s.queue.append(item); return (s.enqueued, false) }
            s.busy = true
            return (s.enqueued, true)
        }
        if parts.isEmpty && !start { owned?.deallocate() }
        if start { begin(item) }
        return ticket
    }

    func waitBlocking(through ticket: UInt64) throws(TransportError) {
        let done = DispatchSemaphore(value: 0)
        let now = state.withLock { s -> Bool in
            if s.completed >= ticket || s.failure != 0 { return true }
            s.blockedWaiters.append((ticket, done))
            return false
        }
        if !now { done.wait() }
        let (completed, failure) = state.withLock { ($0.completed, $0.failure) }
        if completed < ticket { throw TransportError.fromNNG(failure != 0 ? failure : Int32(NNG_ECANCELED.rawValue), operation: "write") }
    }

    func wait(through ticket: UInt64) async throws(TransportError) {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.completed >= ticket || s.failure != 0 { return true }
                    s.waiters.append((ticket, c))
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            nng_aio_cancel(aio)
        }
        let (completed, failure) = state.withLock { ($0.completed, $0.failure) }
        if completed < ticket { throw TransportError.fromNNG(failure != 0 ? failure : Int32(NNG_ECANCELED.rawValue), operation: "write") }
    }

    /// Starts `item` (this caller owns `current` now).
    private func begin(_ item: Item) {
        current = item
        nng_aio_set_timeout(aio, item.timeout)
        submit()
    }

    /// Submits what is left of the current write. nng may call back before this returns.
    fileprivate func submit() {
        var iov = current!.parts.prefix(8).map { nng_iov(iov_buf: $0.baseAddress, iov_len: $0.count) }
        _ = nng_aio_set_iov(aio, UInt32(iov.count), &iov)
        nng_stream_send(stream.raw, aio)
    }

    /// After one completion: resubmits a partial write, or finishes it and starts the next.
    fileprivate func progressed() {
        var rv = nng_aio_result(aio)
        if rv == 0 {
            let moved = nng_aio_count(aio)
            if moved == 0 { rv = Int32(NNG_ECONNSHUT.rawValue) } // no progress: the peer is gone
            drop(moved, from: &current!.parts)
            if rv == 0 && !current!.parts.isEmpty { submit(); return }
        }
        current!.owned?.deallocate()
        current = nil
        var next: Item?
        var ready: [UnsafeContinuation<Void, Never>] = []
        var unblocked: [DispatchSemaphore] = []
        var dropped: [Item] = []
        state.withLock { s in
            if rv != 0 {
                s.failure = rv
                dropped = s.queue
                s.queue = []
                s.busy = false
                ready = s.waiters.map(\.continuation)
                s.waiters = []
                unblocked = s.blockedWaiters.map(\.semaphore)
                s.blockedWaiters = []
            } else {
                s.completed += 1
                if s.queue.isEmpty { s.busy = false } else { next = s.queue.removeFirst() }
                let done = s.completed
                if !s.waiters.isEmpty {
                    ready = s.waiters.filter { $0.ticket <= done }.map(\.continuation)
                    s.waiters.removeAll { $0.ticket <= done }
                }
                if !s.blockedWaiters.isEmpty {
                    unblocked = s.blockedWaiters.filter { $0.ticket <= done }.map(\.semaphore)
                    s.blockedWaiters.removeAll { $0.ticket <= done }
                }
            }
        }
        for item in dropped { item.owned?.deallocate() }
        if let next { begin(next) }
        for semaphore in unblocked { semaphore.signal() }
        CompletionThread.running(aio) { for c in ready { c.resume() } }
    }
}

/// nng calls this on its own thread after each partial write (file scope: see `aioCompleted`).
private func streamWriteProgressed(_ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    Unmanaged<StreamWriter>.fromOpaque(arg).takeUnretainedValue().progressed()
}

/// The reading side of a `ByteStream`: an aio that fills a whole list of buffers, resubmitting
/// itself on nng's thread after each partial transfer (nng completes a stream operation after
/// any progress), so the waiting task is resumed once per call, not once per kernel read.
///
/// `@unchecked Sendable` by hand-off: `run` sets the buffers and continuation before it
/// submits; from then until the callback resumes the continuation, only the callback (one at
/// a time: nng runs an aio's callback once per submission, and it resubmits last) touches
/// `parts`, `result` and the continuation. `cancelled` is atomic. `ByteStream` allows one
/// `run` or `runBlocking` at a time; only `runBlocking` (and `stop`, once nothing reads) touches
/// `waitingAIO`.
final class StreamReader: @unchecked Sendable {
    /// Set once in `init`, before the box is shared.
    private(set) var aio: OpaquePointer!
    private let stream: StreamHandle
    private var parts: [UnsafeMutableRawBufferPointer] = []
    private var result: Int32 = 0
    private var continuation: UnsafeContinuation<Void, Never>?
    private let cancelled = Atomic<Bool>(false)
    /// For `runBlocking`: made on first use, touched only by the one blocking reader.
    private var waitingAIO: OpaquePointer?

    init(stream: StreamHandle) throws(TransportError) {
        self.stream = stream
        var a: OpaquePointer?
        // Unretained: the box outlives its aio (`stop` runs before the owning stream lets it go).
        try check(nng_aio_alloc(&a, streamReadProgressed, Unmanaged.passUnretained(self).toOpaque()), "allocate aio")
        aio = a
    }

    /// Waits for any callback in progress, then frees the aio. Not from a completion callback.
    func stop() {
        nng_aio_stop(aio)
        nng_aio_free(aio)
        if let waitingAIO {
            nng_aio_stop(waitingAIO)
            nng_aio_free(waitingAIO)
        }
    }

    func run(_ buffers: [UnsafeMutableRawBufferPointer], timeout: Duration?, operation: String) async throws(TransportError) {
        guard !buffers.isEmpty else { return }
        parts = buffers
        result = 0
        cancelled.store(false, ordering: .relaxed)
        nng_aio_set_timeout(aio, nngDuration(timeout))
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                continuation = c
                submit()
                if Task.isCancelled { cancel() }
            }
        } onCancel: {
            cancel()
        }
        // The callback resumed us but may still be returning on nng's thread.
        if CompletionThread.current != aio { nng_aio_wait(aio) }
        if result != 0 { throw TransportError.fromNNG(result, operation: operation) }
    }

    /// `run` on the calling thread, with an aio of its own that has no callback: nng then wakes
    /// this thread straight from its I/O thread, and a transfer of bytes already buffered
    /// completes inside `nng_stream_recv` without any wake-up.
    func runBlocking(_ buffers: [UnsafeMutableRawBufferPointer], timeout: Duration?, operation: String) throws(TransportError) {
        guard !buffers.isEmpty else { return }
        if waitingAIO == nil {
            var a: OpaquePointer?
            try check(nng_aio_alloc(&a, nil, nil), "allocate aio")
            waitingAIO = a
        }
        let aio = waitingAIO!
        nng_aio_set_timeout(aio, nngDuration(timeout))
        var left = buffers
        while !left.isEmpty {
            var iov = left.prefix(8).map { nng_iov(iov_buf: $0.baseAddress, iov_len: $0.count) }
            _ = nng_aio_set_iov(aio, UInt32(iov.count), &iov)
            nng_stream_recv(stream.raw, aio)
            nng_aio_wait(aio)
            let rv = nng_aio_result(aio)
            if rv != 0 { throw TransportError.fromNNG(rv, operation: operation) }
            let moved = nng_aio_count(aio)
            if moved == 0 { throw TransportError.fromNNG(Int32(NNG_ECONNSHUT.rawValue), operation: operation) } // the peer is gone
            drop(moved, from: &left)
        }
    }

    private func cancel() {
        cancelled.store(true, ordering: .releasing)
        nng_aio_cancel(aio)
    }

    /// Starts the next transfer of what is left. nng may call back before this returns (on
    /// another thread), so it touches nothing after submitting.
    fileprivate func submit() {
        var iov = parts.prefix(8).map { nng_iov(iov_buf: $0.baseAddress, iov_len: $0.count) }
        _ = nng_aio_set_iov(aio, UInt32(iov.count), &iov)
        nng_stream_recv(stream.raw, aio)
    }

    /// After one completion: drops what was transferred; true if there is more to do.
    fileprivate func progressed() -> Bool {
        let rv = nng_aio_result(aio)
        if rv != 0 { result = rv; return false }
        let moved = nng_aio_count(aio)
        if moved == 0 { result = Int32(NNG_ECONNSHUT.rawValue); return false } // no progress: the peer is gone
        drop(moved, from: &parts)
        if parts.isEmpty { return false }
        if cancelled.load(ordering: .acquiring) { result = Int32(NNG_ECANCELED.rawValue); return false }
        return true
    }

    fileprivate func finish() {
        let c = continuation
        continuation = nil
        CompletionThread.running(aio) { c?.resume() }
    }
}

/// Removes the first `count` bytes from a list of buffers (what one partial transfer moved).
private func drop(_ count: Int, from parts: inout [UnsafeMutableRawBufferPointer]) {
    var left = count
    while left > 0, let first = parts.first {
        if left >= first.count {
            left -= first.count
            parts.removeFirst()
        } else {
            parts[0] = UnsafeMutableRawBufferPointer(rebasing: first[left...])
            left = 0
        }
    }
}

/// nng calls this on its own thread after each partial read (file scope: see `aioCompleted`).
private func streamReadProgressed(_ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    let transfer = Unmanaged<StreamReader>.fromOpaque(arg).takeUnretainedValue()
    if transfer.progressed() { transfer.submit() } else { transfer.finish() }
}
