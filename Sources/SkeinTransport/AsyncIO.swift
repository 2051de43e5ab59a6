import CNNG
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Holds one `nng_aio` and the continuation its completion resumes.
///
/// `@unchecked Sendable` is sound because of a strict hand-off: the awaiting task stores the
/// continuation *before* it submits the aio, and nng calls `aioCompleted` exactly once per
/// submission, which takes the continuation and resumes it exactly once. The task reads
/// nothing the callback writes until it has been resumed, and an idle completion sits in an
/// `AIOPool` where no callback can reach it. `aio` is set once, right after allocation and
/// before any sharing; only nng's thread-safe `nng_aio_cancel` touches it concurrently.
final class AIOCompletion: @unchecked Sendable {
    private(set) var aio: OpaquePointer?
    var continuation: UnsafeContinuation<Void, Never>?

    private init() {}

    /// nng does not retain the box: the pool, or the task awaiting it, keeps it alive.
    static func make() throws(TransportError) -> AIOCompletion {
        let box = AIOCompletion()
        var a: OpaquePointer?
        try check(nng_aio_alloc(&a, aioCompleted, Unmanaged.passUnretained(box).toOpaque()), "allocate aio")
        box.aio = a
        return box
    }

    /// Frees the aio. Call only from a task, never from `deinit`. Through nng's reaper thread:
    /// a task resumed on the aio's own completion thread (`CompletionExecutor`) may free it
    /// while its callback is still running, and `nng_aio_free` would wait for that very
    /// callback (a deadlock).
    func free() {
        if let aio { nng_aio_reap(aio) }
        aio = nil
    }
}

/// nng calls this on its own thread. It must live at file scope: a `@convention(c)` closure
/// formed inside actor-isolated code traps on the executor check when nng calls it.
private func aioCompleted(_ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    let box = Unmanaged<AIOCompletion>.fromOpaque(arg).takeUnretainedValue()
    let c = box.continuation
    box.continuation = nil
    // A task preferring `CompletionExecutor` runs inside `resume()`, on this thread.
    CompletionThread.running(box.aio) { c?.resume() }
}

/// Idle aios of one socket, reused so a send or receive costs no allocation. Closing the
/// pool frees the idle ones; busy ones are freed by their task when they come back.
final class AIOPool: Sendable {
    private let state = Mutex<(idle: [AIOCompletion], closed: Bool)>(([], false))
    /// Calls into nng in progress on this socket, plus `closing` once it is being closed.
    /// nng 1.5.2 frees a socket under a thread that is still inside `nng_ctx_send` (inproc
    /// delivers synchronously, so a reply can complete a request before the call returns):
    /// the caller then locks a destroyed mutex (seen: "pthread_mutex_lock: Invalid argument",
    /// about 1 test run in 30). So closing waits for the calls in progress and refuses new ones.
    private let calls = Atomic<Int>(0)
    private static let closing = 1 << 62

    /// Registers a call into nng; false once the socket is closing (make no call then).
    func enter() -> Bool {
        var v = calls.load(ordering: .acquiring)
        while v & Self.closing == 0 {
            let (done, now) = calls.compareExchange(expected: v, desired: v + 1, ordering: .acquiringAndReleasing)
            if done { return true }
            v = now
        }
        return false
    }

    func leave() { calls.subtract(1, ordering: .releasing) }

    /// Refuses new calls and waits until the ones in progress have returned (they are short).
    func quiesce() {
        calls.bitwiseOr(Self.closing, ordering: .acquiringAndReleasing)
        while calls.load(ordering: .acquiring) & ~Self.closing != 0 { sched_yield() }
    }

    func take() throws(TransportError) -> AIOCompletion {
        if let box = state.withLock({ $0.idle.popLast() }) { return box }
        return try AIOCompletion.make()
    }

    func give(_ box: AIOCompletion) {
        let keep = state.withLock { s -> Bool in
            guard !s.closed, s.idle.count < 16 else { return false }
            s.idle.append(box)
            return true
        }
        if !keep { box.free() }
    }

    func close() {
        let idle = state.withLock { s -> [AIOCompletion] in
            s.closed = true
            defer { s.idle = [] }
            return s.idle
        }
        for box in idle { box.free() }
    }
}

/// nng's duration (milliseconds, or -1 for infinite) for an optional Swift duration.
func nngDuration(_ d: Duration?) -> nng_duration {
    guard let d else { return NNG_DURATION_INFINITE }
    let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    return nng_duration(clamping: max(ms, 0))
}

/// Runs one asynchronous nng operation to completion without blocking a thread.
///
/// `submit` starts the operation on the given aio (`nng_send_aio`, `nng_ctx_recv`, …).
/// `finish` runs after completion with the aio's result code and may take a received message.
/// Task cancellation aborts the operation with `nng_aio_cancel`; the result is then
/// `NNG_ECANCELED`, reported as `.cancelled`.
func withAIO<R: ~Copyable>(
    from pool: AIOPool,
    timeout: Duration?,
    submit: (OpaquePointer) -> Void,
    finish: (OpaquePointer, Int32) throws(TransportError) -> R
) async throws(TransportError) -> R {
    let box = try pool.take()
    defer { pool.give(box) }
    let aio = box.aio!
    nng_aio_set_timeout(aio, nngDuration(timeout))
    guard pool.enter() else { return try finish(aio, Int32(NNG_ECLOSED.rawValue)) }
    await withTaskCancellationHandler {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            box.continuation = c
            submit(aio)
            pool.leave()
            // A cancel that arrived before submission found nothing to abort: abort now.
            if Task.isCancelled { nng_aio_cancel(aio) }
        }
    } onCancel: {
        if let aio = box.aio { nng_aio_cancel(aio) }
    }
    // The callback resumed us but may still be returning on nng's thread; wait until nng is
    // done with the aio before it can be reused (short). Not when this task runs inside that
    // very callback (`CompletionExecutor`): nng would wait for itself. Reusing the aio then is
    // still sound: nng counts an operation started while a callback returns as a new one.
    if CompletionThread.current != aio { nng_aio_wait(aio) }
    return try finish(aio, nng_aio_result(aio))
}
