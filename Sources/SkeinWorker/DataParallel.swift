import Foundation
import SkeinCollective
import SkeinTensor
import SkeinTrain
import Synchronization

/// Joins a ring from a plain thread (see `runBlocking`): listens on `addresses[rank]`, dials the
/// next rank and waits until both neighbours answer. `SKEIN_COLLECTIVE_SPIN_US` in the
/// environment sets how long a waiting rank spins before it sleeps (`RingGroup.defaultSpin`).
public func joinRing(rank: Int, addresses: [String], epoch: UInt64, timeout: Duration,
                     environment: [String: String] = ProcessInfo.processInfo.environment) throws(CollectiveError) -> RingGroup {
    let spin = try spinSetting(environment)
    return try runBlocking { () throws(CollectiveError) in
        try await RingGroup(rank: rank, addresses: addresses, epoch: epoch, timeout: timeout, spin: spin)
    }
}

/// `SKEIN_COLLECTIVE_SPIN_US`: whole microseconds (0: sleep at once); nil when unset.
func spinSetting(_ environment: [String: String]) throws(CollectiveError) -> Duration? {
    guard let text = environment["SKEIN_COLLECTIVE_SPIN_US"] else { return nil }
    guard let us = Int(text.trimmingCharacters(in: .whitespaces)), (0...10_000_000).contains(us) else {
        throw .invalidGroup("SKEIN_COLLECTIVE_SPIN_US must be whole microseconds from 0 to 10000000, not '\(text)'")
    }
    return .microseconds(us)
}

/// Sums each step's gradients across a data-parallel group with the ring allreduce, in one
/// message stream for the whole flat gradient buffer (the network keeps all gradients in one
/// buffer, so small layers are fused with large ones for free).
///
/// Every rank receives its slice's gradient already divided by the global batch size, so the
/// group's sum is the gradient of the whole batch; the order of additions is fixed by the
/// world size, so every rank gets identical bits and repeated runs are identical.
public final class RingReducer: GradientReducer {
    /// Replaced when the group re-forms after losing a rank.
    public var group: RingGroup {
        willSet { retiredWait += group.firstFrameWaitSeconds }
    }
    /// Seconds spent in the allreduce (communication plus waiting for the slowest rank).
    public private(set) var communicationSeconds = 0.0

    public init(group: RingGroup) { self.group = group }

    /// Seconds spent waiting for the previous rank's first frame of each allreduce.
    public var waitSeconds: Double { group.firstFrameWaitSeconds + retiredWait }
    private var retiredWait = 0.0

    // On the training thread itself: a step's allreduce is small, and waiting in nng on this
    // thread saves the task hand-offs (measured in benchmarks/RESULTS.md).
    public func reduce(_ gradients: FloatBuffer) throws {
        try timed { () throws(CollectiveError) in try group.allreduceBlocking(gradients.buffer) }
    }

    /// The group's shared-memory window: no copy of the gradient into it before sending.
    public func gradientStorage(count: Int) -> FloatBuffer? { group.stagingBuffer(count: count) }

    public func reduceExact(_ sums: FixedPointSum) throws {
        try timed { () throws(CollectiveError) in try group.allreduceBlocking(sums.buffer) }
    }

    /// Not timed: evaluation is outside the epoch's training time.
    public func reduceCells(_ cells: UnsafeMutableBufferPointer<Int64>) throws {
        try group.allreduceBlocking(cells)
    }

    public func shard(count: Int) -> Range<Int>? { group.shard(count: count) }

    public func reduceScatter(_ gradients: FloatBuffer) throws {
        try timed { () throws(CollectiveError) in try group.reduceScatterBlocking(gradients.buffer) }
    }

    public func allGather(_ values: FloatBuffer) throws {
        try timed { () throws(CollectiveError) in try group.allGatherBlocking(values.buffer) }
    }

    /// Runs one allreduce, adding its time to `communicationSeconds`.
    private func timed(_ allreduce: () throws(CollectiveError) -> Void) throws(CollectiveError) {
        let start = ContinuousClock.now
        try allreduce()
        let d = ContinuousClock.now - start
        communicationSeconds += Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// A buffer handed to a broadcast task (`resynchronize`). `@unchecked Sendable`: the training
/// thread is blocked in `runBlocking` until the task is done, so only one side touches the memory.
struct StateSlot: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Float>
    init(_ b: UnsafeMutableBufferPointer<Float>) { buffer = b }
}

/// Brings every rank of a (re-formed) group to the same training state: rank 0's, sent down the
/// ring as checkpoint bytes. After a rank was lost mid-step, the survivors may stand one step
/// apart (the allreduce may have finished on some ranks and not on others); the caller makes
/// the most advanced survivor rank 0 (by `Trainer.wholeStateStep`: with a sharded optimiser
/// every rank first goes back to its last whole state). Then every rank continues as its new
/// rank and world.
/// Rank 0 also says whether it still owes an epoch's report (`TrainingRun.owesEpochReport`,
/// passed as `owesEpochReport`); every rank gets that answer back, to close the epoch together.
@discardableResult
public func resynchronize(_ trainer: Trainer, over group: RingGroup, owesEpochReport: Bool = false) throws -> Bool {
    // A sharded optimiser's moments are whole only as of the last gather: the lost rank's shard
    // of the newer ones is gone.
    try trainer.rollBackToWholeState()
    let count = FloatBuffer(count: 2)
    var payload = FloatBuffer(count: 0)
    if group.rank == 0 {
        let bytes = trainer.checkpoint().encoded()
        payload = FloatBuffer(count: (bytes.count + 3) / 4 + 1)
        payload.pointer[0] = Float(bytes.count % 4) // bytes used in the last float (0: all four)
        UnsafeMutableRawPointer(payload.pointer + 1).copyMemory(from: bytes, byteCount: bytes.count)
        // Sent as a float: exact up to 2^24 floats (a 64 MiB state), checked.
        guard payload.count < 1 << 24 else { throw TrainError.invalidModel("training state of \(bytes.count) bytes is too large to resynchronise") }
        count.pointer[0] = Float(payload.count)
        count.pointer[1] = owesEpochReport ? 1 : 0
    }
    let c = StateSlot(count.buffer)
    try runBlocking { () throws(CollectiveError) in try await group.broadcast(c.buffer) }
    let floats = Int(count.pointer[0])
    if group.rank != 0 {
        payload = FloatBuffer(count: floats)
    }
    let p = StateSlot(payload.buffer)
    try runBlocking { () throws(CollectiveError) in try await group.broadcast(p.buffer) }
    if group.rank != 0 {
        let tail = Int(payload.pointer[0])
        let byteCount = (floats - 1) * 4 - (tail == 0 ? 0 : 4 - tail)
        let bytes = [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(payload.pointer + 1), count: byteCount))
        try trainer.restore(Checkpoint.decode(bytes, path: "state from the group's rank 0"))
    }
    trainer.regroup(rank: group.rank, world: group.world)
    return count.pointer[1] == 1
}

/// Groups that ended badly (a peer died or went silent) are kept open, never closed: closing a
/// dialing link whose listener vanished can hang in nng 1.5.2, and a hung close would hold the
/// slot's thread forever. A few sockets per lost group is the price.
public final class RetiredGroups: Sendable {
    public static let shared = RetiredGroups()
    private let groups = Mutex<[RingGroup]>([])
    public func keep(_ group: RingGroup) { groups.withLock { $0.append(group) } }
}
