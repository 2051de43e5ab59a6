#if canImport(Glibc)
import Glibc
#endif
import CDoorbell
import Dispatch
import SkeinWire
import Synchronization

/// Where frame announcements live in a shared window: its first bytes hold a futex word (the
/// bell) and then one 64-byte cell per frame of an allreduce, for each of the window's two
/// halves; the payload slots follow. A cell holds the frame's header and, last, a ready word:
/// the number of the allreduce it belongs to.
///
/// Why: announcing a frame over the nng link costs a message through the kernel and two thread
/// wake-ups on the receiving side (nng's I/O thread, then the waiting one), tens of
/// microseconds per ring step on this kind of machine. Through the window the receiver sees
/// the ready word change while it spins, or is woken directly from the futex.
struct BellLayout: Sendable {
    static let cellBytes = 64
    static let readyOffset = 56
    /// Frames one allreduce may announce (per half); an allreduce with more uses the link.
    let cellsPerHalf: Int

    init(world: Int) { cellsPerHalf = 2 * max(world - 1, 1) * 128 }

    /// Bytes before the first payload slot.
    var bytes: Int { 64 + 2 * cellsPerHalf * Self.cellBytes }

    func cell(half: Int, ordinal: Int) -> Int { 64 + (half * cellsPerHalf + ordinal) * Self.cellBytes }
}

extension SharedWindow {
    /// Publishes `header` in the cell at byte `cell` (the payload is already in its slot), then
    /// `ready`, then rings: a receiver that sees `ready` sees the header and the payload.
    func announce(_ header: TensorFrameHeader, cell: Int, ready: UInt64) {
        header.write(into: UnsafeMutableRawBufferPointer(start: base + cell, count: TensorFrameHeader.size))
        skein_store_release_u64((base + cell + BellLayout.readyOffset).assumingMemoryBound(to: UInt64.self), ready)
        skein_bell_ring(base.assumingMemoryBound(to: UInt32.self))
    }

    /// Whether the cell at byte `cell` holds frame `ready` yet (acquire: its header and payload
    /// are then visible).
    func isAnnounced(cell: Int, ready: UInt64) -> Bool {
        skein_load_acquire_u64((base + cell + BellLayout.readyOffset).assumingMemoryBound(to: UInt64.self)) == ready
    }

    /// Waits until the cell at byte `cell` holds frame `ready`: spins for `spin` first (the
    /// sender is usually on another core and about to ring), then sleeps on the bell. False
    /// when `deadline` passes first.
    func awaitAnnouncement(cell: Int, ready: UInt64, spin: Duration, deadline: ContinuousClock.Instant) -> Bool {
        let clock = ContinuousClock()
        let spinUntil = clock.now + spin
        var spins = 0
        while spin > .zero, !isAnnounced(cell: cell, ready: ready) {
            spins += 1
            if spins & 63 == 0, clock.now >= spinUntil { break }
            skein_spin_pause()
        }
        let bell = UnsafePointer(base.assumingMemoryBound(to: UInt32.self))
        while true {
            let seen = skein_bell_load(bell)
            if isAnnounced(cell: cell, ready: ready) { return true }
            let left = deadline - clock.now
            if left <= .zero { return false }
            let ns = left.components.seconds * 1_000_000_000 + left.components.attoseconds / 1_000_000_000
            if skein_bell_wait(bell, seen, ns) < 0 { usleep(100) } // not expected: do not spin hot
        }
    }

    /// `awaitAnnouncement` for a task: the sleep happens on a thread outside Swift's pool, in
    /// slices, so that cancelling the task ends the wait within one slice. Nil when cancelled.
    func awaitAnnouncement(cell: Int, ready: UInt64, deadline: ContinuousClock.Instant) async -> Bool? {
        if isAnnounced(cell: cell, ready: ready) { return true }
        let window = UncheckedWindow(window: self)
        let cancelled = Atomic<Bool>(false)
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Bool?, Never>) in
                DispatchQueue.global().async {
                    while true {
                        let slice = min(deadline, ContinuousClock.now + .milliseconds(20))
                        if window.window.awaitAnnouncement(cell: cell, ready: ready, spin: .zero, deadline: slice) { return c.resume(returning: true) }
                        if cancelled.load(ordering: .acquiring) { return c.resume(returning: nil) }
                        if slice >= deadline { return c.resume(returning: false) }
                    }
                }
            }
        } onCancel: {
            cancelled.store(true, ordering: .releasing)
        }
    }
}

/// `@unchecked Sendable`: the waiting thread only loads from the mapping, which the group keeps
/// (it holds the window) until the collective that waits is over.
private struct UncheckedWindow: @unchecked Sendable { let window: SharedWindow }
