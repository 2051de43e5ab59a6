import Dispatch
import SkeinCollective
import SkeinTensor
import SkeinTrain
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

/// Sums each step's gradients across a data-parallel group with the ring allreduce, in one
/// message stream for the whole flat gradient buffer (the network keeps all gradients in one
/// buffer, so small layers are fused with large ones for free).
///
/// Every rank receives its slice's gradient already divided by the global batch size, so the
/// group's sum is the gradient of the whole batch; the order of additions is fixed by the
/// world size, so every rank gets identical bits and repeated runs are identical.
public final class RingReducer: GradientReducer {
    public let group: RingGroup
    /// Seconds spent in the allreduce (communication plus waiting for the slowest rank).
    public private(set) var communicationSeconds = 0.0

    public init(group: RingGroup) { self.group = group }

    public func reduce(_ gradients: FloatBuffer) throws {
        let target = GradientSlot(gradients.buffer), group = self.group
        let start = ContinuousClock.now
        try runBlocking { () throws(CollectiveError) in try await group.allreduce(target.buffer) }
        let d = ContinuousClock.now - start
        communicationSeconds += Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// The gradient buffer handed to the allreduce task. `@unchecked Sendable`: the training thread
/// is blocked in `runBlocking` until the task is done, so only one side touches the memory.
struct GradientSlot: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Float>
    init(_ b: UnsafeMutableBufferPointer<Float>) { buffer = b }
}
