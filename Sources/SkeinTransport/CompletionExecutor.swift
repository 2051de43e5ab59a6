import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A task executor that runs a task, resumed by an nng completion, right there on nng's
/// completion thread, instead of waking a thread of Swift's global pool for it.
///
/// Every completed send or receive otherwise costs two thread hand-offs (nng's I/O thread to
/// its callback thread, then to a Swift pool thread); a blocking C caller pays one. For
/// request/reply round trips that second hop is most of the difference to raw nng. The same
/// design as SwiftNIO's event loops, with the same rule: **code running under this executor
/// must not block** (no locks held for long, no synchronous waits, no disk or database work),
/// or it stalls nng's few callback threads for every socket in the process. Use it for I/O
/// loops that do little between awaits:
///
///     try await withTaskExecutorPreference(CompletionExecutor.shared) { try await serve() }
///
/// Jobs enqueued from anywhere but an nng completion (a new task, a timer, a resumption by
/// other code) go to Swift's global executor as usual.
public final class CompletionExecutor: TaskExecutor {
    public static let shared = CompletionExecutor()
    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        if CompletionThread.current != nil {
            job.runSynchronously(on: asUnownedTaskExecutor())
        } else {
            globalConcurrentExecutor.enqueue(job)
        }
    }
}

/// Which aio's completion callback this thread is running, if any (a thread-local).
enum CompletionThread {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, nil) == 0, "pthread_key_create failed")
        return k
    }()

    static var current: OpaquePointer? {
        pthread_getspecific(key).map { OpaquePointer($0) }
    }

    /// Runs `work` now, or on another thread when this is an nng completion thread: closing a
    /// socket or context waits for running callbacks, this one included.
    static func offCompletionThread(_ work: @escaping @Sendable () -> Void) {
        if current != nil { DispatchQueue.global().async(execute: work) } else { work() }
    }

    /// Marks this thread as running `aio`'s callback for the duration of `body`.
    static func running(_ aio: OpaquePointer?, _ body: () -> Void) {
        let outer = pthread_getspecific(key)
        pthread_setspecific(key, aio.map { UnsafeRawPointer($0) })
        body()
        pthread_setspecific(key, outer)
    }
}
