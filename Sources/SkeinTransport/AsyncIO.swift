import CNNG

/// Holds one `nng_aio` and the continuation its completion resumes.
///
/// `@unchecked Sendable` is sound because of a strict hand-off: the awaiting task stores the
/// continuation *before* it submits the aio, and nng calls `aioCompleted` exactly once per
/// submission, which resumes the continuation exactly once. The task reads nothing the
/// callback writes until after it has been resumed. `aio` itself is set once, before any
/// sharing, and only nng's thread-safe `nng_aio_cancel` is called on it concurrently.
final class AIOCompletion: @unchecked Sendable {
    var aio: OpaquePointer?
    var continuation: CheckedContinuation<Void, Never>?
}

/// nng calls this on its own thread. It must live at file scope: a `@convention(c)` closure
/// formed inside actor-isolated code traps on the executor check when nng calls it.
private func aioCompleted(_ arg: UnsafeMutableRawPointer?) {
    guard let arg else { return }
    let box = Unmanaged<AIOCompletion>.fromOpaque(arg).takeUnretainedValue()
    let c = box.continuation
    box.continuation = nil
    c?.resume()
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
///
/// The aio is freed here, after the await, never in a `deinit`: freeing from the completion
/// thread would wait on the very callback that is running (a deadlock).
func withAIO<R: ~Copyable>(
    timeout: Duration?,
    operation: String,
    submit: (OpaquePointer) -> Void,
    finish: (OpaquePointer, Int32) throws(TransportError) -> R
) async throws(TransportError) -> R {
    let box = AIOCompletion()
    var aio: OpaquePointer?
    try check(nng_aio_alloc(&aio, aioCompleted, Unmanaged.passUnretained(box).toOpaque()), operation)
    let handle = aio!
    box.aio = handle
    defer {
        // Waits for the callback to return if it is still unwinding on nng's thread.
        nng_aio_free(handle)
        withExtendedLifetime(box) {}
    }
    nng_aio_set_timeout(handle, nngDuration(timeout))
    await withTaskCancellationHandler {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            box.continuation = c
            submit(handle)
            // A cancel that arrived before submission found nothing to abort: abort now.
            if Task.isCancelled { nng_aio_cancel(handle) }
        }
    } onCancel: {
        if let aio = box.aio { nng_aio_cancel(aio) }
    }
    return try finish(handle, nng_aio_result(handle))
}
