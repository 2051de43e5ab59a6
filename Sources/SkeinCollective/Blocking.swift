import Dispatch
import Synchronization

/// Runs async work to completion from a plain thread (a trial's training thread, or a
/// command's main thread) and returns its result. Never call it from a task on Swift's
/// cooperative pool: blocking a pool thread could starve the very work it waits for.
public func runBlocking<T: Sendable, E: Error>(_ work: @escaping @Sendable () async throws(E) -> T) throws(E) -> T {
    let done = DispatchSemaphore(value: 0)
    let outcome = Mutex<Result<T, E>?>(nil)
    Task {
        let r: Result<T, E>
        do throws(E) { r = .success(try await work()) } catch { r = .failure(error) }
        outcome.withLock { $0 = r }
        done.signal()
    }
    done.wait()
    return try outcome.withLock { $0! }.get()
}
