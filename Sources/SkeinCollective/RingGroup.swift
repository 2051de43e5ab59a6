#if canImport(Glibc)
import Glibc
#endif
import SkeinTensor
import SkeinTransport
import SkeinWire
import Synchronization

/// The ranks of one data-parallel group, linked in a ring over nng: rank r listens for rank
/// r−1 and dials rank r+1 — pair sockets over ipc:// on one host, nng byte streams over tcp://
/// across hosts (`RingLink`). Each link is what its listener's address says, so one ring can
/// mix both: ipc:// between neighbours on one host, tcp:// where the ring crosses hosts.
///
/// Allreduce is the bandwidth-optimal ring algorithm (Patarasuk & Yuan 2009, as in Horovod and
/// NCCL): a reduce-scatter then an all-gather, each `world − 1` steps, every rank sending and
/// receiving `1/world` of the buffer per step. Segments travel in chunks; one task sends and one
/// receives, and the steps pipeline chunk by chunk (see `pipeline`), so sending, receiving and
/// adding overlap. The two halves also run alone (`reduceScatterBlocking`, `allGatherBlocking`),
/// for a data-parallel step that shards its optimiser.
///
/// **Determinism.** Element i of segment j is always summed in ring order starting at rank j:
/// `((x_j + x_{j+1}) + x_{j+2}) + …`. The order depends only on the world size, never on
/// timing, so repeated runs give identical bits. It is not independent of the world size (a
/// different number of ranks sums in a different order); see `Sources/SkeinCollective/README.md`.
///
/// **One host.** When the next rank listens on an `ipc://` address (so it runs on this host),
/// payloads travel through a shared-memory window (`SharedWindow`) and the nng frame carries
/// only the header: same framing, epochs, deadlines and failure detection, one copy instead of
/// three. Within an allreduce every step's segment has its own place in the window, and
/// consecutive allreduces alternate between its two halves: a rank that starts allreduce k+2
/// has finished k+1, which needed the next rank to have finished k (it forwarded a segment that
/// rank summed in k+1), so nothing it still reads is overwritten. If the window cannot be made
/// (no `/dev/shm`, too small), frames carry their payloads as before. From the second
/// allreduce on, headers do not travel over nng either: the sender announces each frame in a
/// cell of its window and rings a futex doorbell; the receiver spins briefly, then sleeps on
/// it (`BellLayout`). Deadlines, epochs and header checks are the same.
///
/// **Across hosts.** A `tcp://` link is an nng byte stream, not a pair socket: the frames are
/// the same, written back to back, and the payload goes from the tensor to the kernel and from
/// the kernel into place (or a reused buffer it is added from) without an nng message between.
/// (`tls+tcp://` links stay pair sockets.)
///
/// **Failure.** Every send and receive has a deadline (`timeout`, about two heartbeat
/// intervals); a dead or silent neighbour ends the collective with `.peerTimeout(rank:)` (a
/// closed byte stream with `.peerFailed(rank:)` at once).
/// Not for concurrent use: one task (or, with `allreduceBlocking`, one thread) drives a group.
/// `@unchecked Sendable`: one task or thread drives a group at a time; the only concurrency is inside
/// `exchange` and `pipeline`, whose two child tasks use different links (`next`, `prev`) and
/// different windows (only the sending child reads `outWindow` and counts `sendOrdinal`, only
/// the receiving child touches `inWindow`, `receiveOrdinal`, `receivedInline` and
/// `firstFrameStart`). In `exchange` their buffers are disjoint; in `pipeline` the
/// sender reads a chunk only after the receiver has written it (`FrameProgress`), and the
/// receiver overwrites a chunk the sender read only once it came back round the ring, which the
/// sender's own send of it finished (a byte stream reads the payload from the buffer until
/// then). `sequence`, `outWindow` and the doorbell windows change only between collectives,
/// `prev` only in `init`.
public final class RingGroup: @unchecked Sendable {
    public let rank: Int
    public let world: Int
    public let epoch: UInt64
    public let timeout: Duration
    /// Floats per message; large enough to amortise per-message cost, small enough to pipeline.
    public let chunkFloats: Int
    let next: RingLink?
    private(set) var prev: RingLink?
    private var sequence: UInt64 = 0
    /// Seconds this rank waited, summed over allreduces, from entering until the previous
    /// rank's first frame arrived: how late that neighbour was (plus one frame's transfer).
    /// The rank after a straggler waits longest; see `SkeinReport.Stragglers`.
    public private(set) var firstFrameWaitSeconds = 0.0
    private var firstFrameStart: ContinuousClock.Instant?
    private var closed = false

    /// Allreduces whose buffer came from `stagingBuffer` and whose segments were sent in place.
    public private(set) var inPlaceAllreduces = 0
    /// The last view `stagingBuffer` lent of each half.
    private var stagedViews: [FloatBuffer?] = [nil, nil]
    /// Send payloads through shared memory (the next rank is on this host and it worked so far).
    public private(set) var sendsThroughSharedMemory: Bool
    let ownAddress: String
    let nextAddress: String
    private var outWindow: SharedWindow?
    private var outGeneration: UInt16 = 0
    private var outPaths: [String] = []
    private var inWindow: SharedWindow?
    private var inGeneration: UInt16 = 0
    private var allreduces: UInt64 = 0
    /// Frames per step `allreduceBlocking` lets nng queue towards a busy neighbour.
    static let queuedHeaders = 16
    /// Doorbells (`BellLayout`): an allreduce's frames are announced in the window that the
    /// previous allreduce's payloads went through, which both ends then know (the receiver has
    /// mapped it); without one, frames are announced on the link. The sender decides from what
    /// it sent, the receiver from what it received, so they agree without a message.
    private let bells: BellLayout
    /// How long a receiver spins on a doorbell before it sleeps (see `defaultSpin`).
    private let spin: Duration
    private var lastOutWindow: SharedWindow?
    private var lastInWindow: SharedWindow?
    private var bellOut: SharedWindow?
    private var bellIn: SharedWindow?
    /// The window half (of slots and cells) the current allreduce uses: they alternate.
    private var half: Int { Int((allreduces &- 1) & 1) }
    private var sendOrdinal = 0
    private var receiveOrdinal = 0
    private var receivedInline = false

    /// How long a receiver spins on a doorbell before it sleeps on the futex, unless told: 2 ms
    /// while every rank can have a core, none when ranks share cores (a spinner would hold the
    /// core the rank it waits for needs). All the group's ranks count, wherever they run: a
    /// group spanning hosts may be several advertised "hosts" on one machine. A halted vCPU
    /// here takes 30-50 µs to wake (up to 0.8 ms): with a neighbour 0.6 ms late every step, a
    /// step cost 249 µs beyond its compute with a 20 µs spin and 184 µs with 2 ms
    /// (benchmarks/RESULTS.md). Ranks are rarely further apart than that; MPI's shared-memory
    /// transports poll too.
    public static func defaultSpin(world: Int) -> Duration {
        world <= sysconf(Int32(_SC_NPROCESSORS_ONLN)) ? .milliseconds(2) : .zero
    }

    /// Where a rank whose address is `tcp://HOST:PORT` listens: every interface, on PORT. HOST
    /// is how the other ranks reach it, and a host name can resolve differently here than
    /// there (Debian and cloud-init map a machine's own name to 127.0.1.1 in /etc/hosts), so
    /// binding to it could leave the rank unreachable from other hosts.
    static func listenAddress(_ address: String) -> String {
        guard address.hasPrefix("tcp://"), let colon = address.lastIndex(of: ":"),
              address[address.index(after: colon)...].allSatisfy(\.isNumber) else { return address }
        let host = address[address.index(address.startIndex, offsetBy: 6)..<colon]
        return (host.hasPrefix("[") ? "tcp://[::]" : "tcp://0.0.0.0") + address[colon...]
    }

    var nextRank: Int { (rank + 1) % world }
    var prevRank: Int { (rank + world - 1) % world }

    /// Joins the ring: listens on `addresses[rank]`, dials `addresses[rank + 1]`, and waits
    /// until both neighbours answer (or `timeout` passes).
    public init(rank: Int, addresses: [String], epoch: UInt64, timeout: Duration = .seconds(2),
                chunkFloats: Int = 1 << 18, sharedMemory: Bool = true, tls: TLSConfiguration? = nil,
                spin: Duration? = nil) async throws(CollectiveError) {
        guard !addresses.isEmpty, rank >= 0, rank < addresses.count else {
            throw .invalidGroup("rank \(rank) of \(addresses.count) addresses")
        }
        self.rank = rank
        world = addresses.count
        self.epoch = epoch
        self.timeout = timeout
        self.chunkFloats = max(chunkFloats, 1)
        ownAddress = addresses[rank]
        nextAddress = addresses[(rank + 1) % world]
        sendsThroughSharedMemory = sharedMemory && world > 1 && nextAddress.hasPrefix("ipc://")
        bells = BellLayout(world: world)
        self.spin = spin ?? Self.defaultSpin(world: world)
        if world == 1 {
            next = nil; prev = nil
            return
        }
        let nextRank = (rank + 1) % world, prevRank = (rank + world - 1) % world
        let options = Socket.Options(maxMessageSize: TensorFrameHeader.size + self.chunkFloats * 4 + 64, defaultTimeout: timeout,
                                     reconnectMin: .milliseconds(10), reconnectMax: .milliseconds(200))
        let deadline = ContinuousClock.now + timeout
        var listener: StreamListener?
        do {
            if tls == nil && ownAddress.hasPrefix("tcp://") {
                listener = try StreamListener(Self.listenAddress(ownAddress))
                prev = nil // taken from the listener below
            } else {
                let p = try Socket(.pair, options: options)
                try p.listen(ownAddress, tls: tls)
                prev = MessageLink(socket: p, peer: prevRank, timeout: timeout)
            }
        } catch {
            throw .peerFailed(rank: rank, operation: "listen on \(ownAddress)", detail: error.description)
        }
        defer { listener?.close() }
        do {
            if tls == nil && nextAddress.hasPrefix("tcp://") {
                next = StreamLink(stream: try await ByteStream.dial(nextAddress, timeout: timeout), peer: nextRank, timeout: timeout,
                                  maxFloats: self.chunkFloats)
            } else {
                let n = try Socket(.pair, options: options)
                try n.dial(nextAddress, tls: tls)
                next = MessageLink(socket: n, peer: nextRank, timeout: timeout)
            }
        } catch {
            throw .peerFailed(rank: nextRank, operation: "connect", detail: error.description)
        }
        // A token around the ring proves every link is up before the first collective. Sent
        // forward first (it never waits on the rank behind), then taken from behind.
        let mine = FloatBuffer([Float(rank)]), theirs = FloatBuffer(count: 1)
        try await send(RingBuffer(mine.buffer), tag: tag(phase: 0, step: 0))
        if let listener {
            prev = try await acceptPrevious(on: listener, until: deadline, token: RingBuffer(theirs.buffer))
        } else {
            try await receive(into: RingBuffer(theirs.buffer), tag: tag(phase: 0, step: 0), add: false)
        }
    }

    /// Takes the previous rank's byte stream: the first connection whose first frame is this
    /// group's token. Anything else that connects (a rank of an earlier group, a port scanner,
    /// garbage) is dropped, and the last such error is reported if the rank never comes.
    private func acceptPrevious(on listener: StreamListener, until deadline: ContinuousClock.Instant,
                                token: RingBuffer) async throws(CollectiveError) -> StreamLink {
        var failure = CollectiveError.peerTimeout(rank: prevRank, operation: "connect", seconds: seconds(timeout))
        while case let left = deadline - .now, left > .zero {
            let stream: ByteStream
            do {
                stream = try await listener.accept(timeout: left)
            } catch {
                if error.code == .cancelled { throw .cancelled }
                if error.code != .timedOut { failure = .peerFailed(rank: prevRank, operation: "accept", detail: error.description) }
                break
            }
            let link = StreamLink(stream: stream, peer: prevRank, timeout: timeout, maxFloats: chunkFloats)
            do {
                _ = try await receiveFrame(into: token, at: 0, on: link, tag: tag(phase: 0, step: 0), add: false)
                return link
            } catch {
                if case .cancelled = error { throw error }
                failure = error
                link.close()
            }
        }
        throw failure
    }

    deinit {
        releaseSharedMemory()
        next?.close()
        prev?.close()
    }

    /// Removes the names of this rank's windows (mappings stay valid); a receiver that never
    /// mapped one (it failed first) can no longer, and nothing is left in `/dev/shm`.
    private func releaseSharedMemory() {
        for path in outPaths { unlink(path) }
        outPaths = []
    }

    /// A window of at least `bytes` for this allreduce's outgoing payloads, or nil (inline).
    private func outgoingWindow(bytes: Int) -> SharedWindow? {
        guard sendsThroughSharedMemory else { return nil }
        if let w = outWindow, w.size >= bytes { return w }
        guard outGeneration < SharedPayload.maxGeneration else { sendsThroughSharedMemory = false; return nil }
        let generation = outGeneration + 1
        let path = SharedWindow.path(receiver: nextAddress, epoch: epoch, generation: generation)
        do {
            let w = try SharedWindow.create(path: path, size: bytes)
            outWindow = w; outGeneration = generation; outPaths.append(path)
            return w
        } catch {
            // No usable /dev/shm: carry payloads in the frames from now on.
            sendsThroughSharedMemory = false
            return nil
        }
    }

    /// Leaves the group after its last collective, without losing anything in flight.
    ///
    /// A finished `send` means nng took the frame, not that the neighbour has it: a rank that
    /// closed its sockets (or exited) right after its last all-gather step could drop that frame
    /// and leave its neighbour waiting (nng also frees a frame its link holds when the link
    /// closes). So: every rank sends `fin` forward and takes `fin` from behind (all of that
    /// neighbour's frames are consumed), acknowledges it backwards and waits for its own
    /// acknowledgement (the rank ahead consumed all of ours). Then it hangs up its dialing
    /// link, and closes its listening link only after the rank behind hung up: that rank got
    /// our acknowledgement, and a listener never closes under a dialer (an nng 1.5.2 hang,
    /// see `Socket.waitUntilDisconnected`). If the handshake fails, the sockets stay open
    /// (closing a link to a vanished peer can hang in nng 1.5.2); keep or drop the group.
    public func close() async throws(CollectiveError) {
        guard let next, let prev, !closed else { return }
        closed = true
        defer { releaseSharedMemory() }
        sequence += 1
        let nothing = RingBuffer(UnsafeMutableBufferPointer<Float>(start: nil, count: 0))
        try await exchange(send: nothing, receive: nothing, tag: tag(phase: 4, step: 0), add: false)
        try await exchange(send: nothing, on: prev, receive: nothing, on: next, tag: tag(phase: 5, step: 0), add: false)
        next.close()
        if await !prev.waitForHangUp(timeout: timeout) {
            throw .peerTimeout(rank: prevRank, operation: "close", seconds: seconds(timeout))
        }
        prev.close()
    }

    private func tag(phase: UInt64, step: UInt64) -> UInt64 { (sequence << 16) | (phase << 12) | step }

    /// Sums `buffer` across the group in place; with `average`, divides by the world size.
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, average: Bool = false) async throws(CollectiveError) {
        defer { if average && world > 1 { Vectorized.scale(buffer.baseAddress!, by: 1 / Float(world), count: buffer.count) } }
        try await allreduce(RingBuffer(buffer))
    }

    /// Sums `buffer` across the group in place, exactly: two's-complement addition wraps and is
    /// associative, so the result has the same bits in any order and for any world size (the
    /// exact reduction of `FixedPointSum`).
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>) async throws(CollectiveError) {
        try await allreduce(RingBuffer(buffer))
    }

    func allreduce(_ buffer: RingBuffer) async throws(CollectiveError) {
        sequence += 1
        guard let steps = plan(buffer) else { return }
        do {
            try await pipeline(steps, buffer: buffer)
            lastInWindow = receivedInline ? nil : inWindow
        } catch {
            releaseSharedMemory() // the group is finished; leave nothing in /dev/shm
            throw error
        }
    }

    /// `allreduce` for a plain thread with nothing else to do meanwhile (a training thread,
    /// the way MPI's blocking calls are used): the same steps, frames, order of additions and
    /// deadlines, with the calling thread blocked in nng for each frame instead of tasks that
    /// hand frames to each other. Per frame that is one thread wake-up instead of several: it
    /// is what the small allreduces of data-parallel steps are made of. Never call it from a
    /// task (it holds the thread); `runBlocking` is the bridge for the other direction.
    public func allreduceBlocking(_ buffer: UnsafeMutableBufferPointer<Float>, average: Bool = false) throws(CollectiveError) {
        defer { if average && world > 1 { Vectorized.scale(buffer.baseAddress!, by: 1 / Float(world), count: buffer.count) } }
        try allreduceBlocking(RingBuffer(buffer))
    }

    /// The exact integer allreduce (see `allreduce(_:)` for Int64) on the calling thread.
    public func allreduceBlocking(_ buffer: UnsafeMutableBufferPointer<Int64>) throws(CollectiveError) {
        try allreduceBlocking(RingBuffer(buffer))
    }

    func allreduceBlocking(_ buffer: RingBuffer) throws(CollectiveError) {
        try collectiveBlocking(buffer, phases: .both)
    }

    /// The elements of a `count`-element buffer that this rank holds summed over the whole
    /// group after `reduceScatterBlocking`, and hands to every rank in `allGatherBlocking`: its
    /// shard (1/world of the buffer; all of it for one rank).
    public func shard(count: Int) -> Range<Int> {
        world > 1 ? segment(rank + 1, of: count) : 0..<count
    }

    /// The first half of `allreduceBlocking`: afterwards this rank's `shard(count:)` of `buffer`
    /// holds the group's sum, with the bits the allreduce gives there (the rest holds partial
    /// sums). A data-parallel step that shards its optimiser (ZeRO stage 1, Rajbhandari et al.
    /// 2020) updates only its shard of the parameters and all-gathers them, in place of the
    /// allreduce's all-gather of the gradient: the same traffic, 1/world of the update.
    public func reduceScatterBlocking(_ buffer: UnsafeMutableBufferPointer<Float>) throws(CollectiveError) {
        try collectiveBlocking(RingBuffer(buffer), phases: .reduceScatter)
    }

    /// The second half of `allreduceBlocking`: every rank's `shard(count:)` of `buffer` goes to
    /// every rank (the rest of this rank's buffer is overwritten).
    public func allGatherBlocking(_ buffer: UnsafeMutableBufferPointer<Float>) throws(CollectiveError) {
        try collectiveBlocking(RingBuffer(buffer), phases: .allGather)
    }

    /// Which part of the ring allreduce a collective runs.
    enum Phases { case both, reduceScatter, allGather }

    /// Runs `phases` of the ring allreduce of `buffer` on the calling thread (see `allreduceBlocking`).
    func collectiveBlocking(_ buffer: RingBuffer, phases: Phases) throws(CollectiveError) {
        sequence += 1
        guard let steps = plan(buffer, phases: phases) else { return }
        let chunk = chunk(buffer.element)
        do {
            // One thread cannot receive while it waits to send, so its sends must never wait for
            // the neighbour: frames queued on a byte stream never do (nng writes them on its
            // own threads), nor do frames announced through the doorbell; a pair socket holds a
            // few frames per step (a payload frame, or up to `queuedHeaders` headers: measured,
            // a Unix socket takes about 250 small messages before a sender waits).
            let frames = steps.map { max(($0.out.count + chunk - 1) / chunk, ($0.into.count + chunk - 1) / chunk) }.max() ?? 1
            let shared = steps.allSatisfy { $0.slot != nil }
            let sendsNeverWait = next is StreamLink || shared && (bellOut != nil || frames <= Self.queuedHeaders) || frames <= 1
            if let next, let prev, sendsNeverWait {
                try pipelineOnThread(steps, buffer: buffer, next: next, prev: prev)
            } else {
                // Many inline frames per step over a pair socket: sent one after another from
                // one thread they could fill both directions' buffers and wait for each other;
                // the task pipeline receives while it sends.
                try runBlocking { () throws(CollectiveError) in try await self.pipeline(steps, buffer: buffer) }
            }
            lastInWindow = receivedInline ? nil : inWindow
        } catch {
            releaseSharedMemory()
            throw error
        }
    }

    /// Elements per frame: `chunkFloats` × 4 bytes, whatever the element.
    func chunk(_ element: RingElement) -> Int { max(1, chunkFloats * 4 / element.size) }

    /// Where an allreduce of `count` elements puts its payloads in the shared window: each of
    /// the 2(world − 1) steps sends one segment and has its own slot, after the doorbell's
    /// cells; consecutive allreduces alternate between two halves. A half holds at least the
    /// whole buffer (2(world − 1) slots of 1/world of it), which `stagingBuffer` relies on.
    private func windowLayout(count n: Int, element: RingElement) -> (slotBytes: Int, windowBytes: Int) {
        let slotBytes = ((n + world - 1) / world * element.size + 63) & ~63
        return (slotBytes, bells.bytes + 2 * 2 * (world - 1) * slotBytes)
    }

    /// Where half `h` of `window` starts. The halves are fixed by the window's size, not by the
    /// current buffer's: with halves sized for each buffer, a large allreduce's half 0 would
    /// cover a smaller previous allreduce's half 1, which the next rank may still be reading.
    private func halfStart(_ window: SharedWindow, _ h: Int) -> Int {
        bells.bytes + h * (((window.size - bells.bytes) / 2) & ~63)
    }

    /// Room for the next allreduce's `count` floats inside this rank's shared window, or nil
    /// when payloads do not go through one (one rank, the next rank on another host, no
    /// `/dev/shm`). Fill it, then pass exactly it to the next `allreduce`/`allreduceBlocking`
    /// (or `reduceScatterBlocking`, the next collective):
    /// its segments are then announced where they lie instead of being copied into the window
    /// (for a data-parallel step, two of the three copies of half the gradient per step).
    /// The result stays readable (the view keeps the window mapped) but is overwritten two
    /// collectives later.
    ///
    /// Why it is safe to write: the buffer lies in the half of the window that the next
    /// allreduce k uses, and the next rank last read that half in allreduce k − 2, which it
    /// finished before this rank could finish k − 1 (see the type's comment). During k, the
    /// next rank reads a segment before any sum that depends on it can come back round the ring
    /// and be written over it.
    public func stagingBuffer(count: Int) -> FloatBuffer? {
        guard world > 1, count >= world else { return nil }
        let layout = windowLayout(count: count, element: .float32)
        guard let window = outgoingWindow(bytes: layout.windowBytes) else { return nil }
        let nextHalf = Int(allreduces & 1) // `half` once the next allreduce has counted itself
        let start = (window.base + halfStart(window, nextHalf)).bindMemory(to: Float.self, capacity: count)
        // The same two views serve every step: a training step allocates nothing.
        if let view = stagedViews[nextHalf], view.pointer == start, view.count == count { return view }
        let view = FloatBuffer(viewing: start, count: count, owner: window)
        stagedViews[nextHalf] = view
        return view
    }

    /// The steps of one allreduce of `buffer` (nil when there is nothing to exchange), with
    /// their places in the shared window when payloads go through it.
    private func plan(_ buffer: RingBuffer, phases: Phases = .both) -> [RingStep]? {
        guard world > 1, buffer.count > 0 else { return nil }
        let n = buffer.count
        func segment(_ j: Int) -> Range<Int> { self.segment(j, of: n) }
        let layout = windowLayout(count: n, element: buffer.element)
        // Any size goes through the window: with its doorbell even a tiny frame crosses faster
        // than as an nng message. Not with fewer elements than ranks: a rank that received only
        // empty frames would not know the window, so the doorbell could not follow it there.
        let window = n >= world ? outgoingWindow(bytes: layout.windowBytes) : nil
        allreduces += 1
        let start = window.map { halfStart($0, half) } ?? 0
        // A buffer from `stagingBuffer` already lies in this allreduce's half: every segment is
        // sent from where it is, nothing is copied into a slot.
        let staged = window.map { buffer.base.map(UnsafeRawPointer.init) == UnsafeRawPointer($0.base + start) } ?? false
        if staged { inPlaceAllreduces += 1 }
        func slot(_ step: Int, _ out: Range<Int>) -> Int? {
            guard window != nil else { return nil }
            return staged ? start + out.lowerBound * buffer.element.size : start + step * layout.slotBytes
        }
        // Reduce-scatter: after step s, rank r holds the partial sum of segment r−s−1 over s+2
        // ranks. All-gather: pass the finished segments around.
        // A reduce-scatter or an all-gather alone keeps its steps' slots and tags.
        var steps: [RingStep] = []
        for s in 0..<(world - 1) where phases != .allGather {
            let out = segment(rank - s)
            steps.append(RingStep(out: out, into: segment(rank - s - 1), tag: tag(phase: 1, step: UInt64(s)), add: true, slot: slot(s, out)))
        }
        for s in 0..<(world - 1) where phases != .reduceScatter {
            let out = segment(rank + 1 - s)
            steps.append(RingStep(out: out, into: segment(rank - s), tag: tag(phase: 2, step: UInt64(s)), add: false,
                                  slot: slot(world - 1 + s, out)))
        }
        let chunk = chunk(buffer.element)
        func frames(_ r: Range<Int>) -> Int { max(1, (r.count + chunk - 1) / chunk) }
        // The next rank receives exactly the frames this one sends, in the same order.
        bellOut = steps.reduce(0) { $0 + frames($1.out) } <= bells.cellsPerHalf ? lastOutWindow : nil
        bellIn = steps.reduce(0) { $0 + frames($1.into) } <= bells.cellsPerHalf ? lastInWindow : nil
        lastOutWindow = window
        sendOrdinal = 0
        receiveOrdinal = 0
        receivedInline = false
        // How late the previous rank is shows when it starts a reduction; an all-gather's first
        // frame also waits for that rank's work between the two halves.
        firstFrameStart = phases == .allGather ? nil : .now
        return steps
    }

    /// Segment `j` (taken mod world) of an `n`-element buffer: the ring's unit of work.
    private func segment(_ j: Int, of n: Int) -> Range<Int> {
        let k = ((j % world) + world) % world
        return (k * n / world)..<((k + 1) * n / world)
    }

    /// `pipeline` on the calling thread: the same frames in the same order (`PipelineOrder`),
    /// each sent as soon as the frame it forwards has arrived; the thread receives when it has
    /// nothing to send. The caller ensures sends never wait for the neighbour (see
    /// `allreduceBlocking`): over a byte stream they are queued and nng writes them on its own
    /// threads; over a pair socket they are announced in the doorbell window or are few enough
    /// for nng to hold. Receives wait in nng or on the doorbell, woken straight from nng's I/O
    /// thread or the neighbour's futex wake (no task, no hand-off to Swift's pool).
    func pipelineOnThread(_ steps: [RingStep], buffer: RingBuffer, next: RingLink, prev: RingLink) throws(CollectiveError) {
        var order = PipelineOrder(steps: steps, chunk: chunk(buffer.element))
        let stream = next as? StreamLink
        var ticket: UInt64? // the last frame queued on `stream`
        func sendReady() throws(CollectiveError) {
            if let stream { return try queueReadySends(&order, buffer: buffer, next: stream, ticket: &ticket) }
            guard let next = next as? MessageLink else { preconditionFailure("a ring link is a pair socket or a byte stream") }
            while let (i, k) = order.nextSend() {
                try sendAllreduceFrameBlocking(buffer.slice(steps[i].out), at: k * order.chunk, on: next, tag: steps[i].tag, slot: steps[i].slot)
            }
        }
        do {
            try sendReady()
            while let (i, k) = order.nextReceive() {
                try receiveAllreduceFrameBlocking(into: buffer.slice(steps[i].into), at: k * order.chunk, on: prev, tag: steps[i].tag, add: steps[i].add)
                order.received()
                try sendReady()
            }
            if let ticket, let stream { try stream.waitForSendsBlocking(through: ticket) }
        } catch {
            // Queued writes still read the caller's buffer: end them before it can go. The
            // group is finished anyway.
            if let ticket, let stream {
                stream.close()
                try? stream.waitForSendsBlocking(through: ticket)
            }
            throw error
        }
    }

    /// Runs the ring's steps as one pipeline. Step i ≥ 1 sends the segment step i − 1 received,
    /// so frame k of step i leaves as soon as frame k of step i − 1 has arrived and been added,
    /// not when all of step i − 1 is done: sending, receiving and adding overlap across steps
    /// as well as within them (as NCCL's ring does). One task sends, one receives.
    func pipeline(_ steps: [RingStep], buffer: RingBuffer) async throws(CollectiveError) {
        guard let next, let prev else { return }
        if let next = next as? StreamLink, let prev = prev as? StreamLink {
            return try await streamPipeline(steps, buffer: buffer, next: next, prev: prev)
        }
        let chunk = chunk(buffer.element)
        let frames: @Sendable (Range<Int>) -> Int = { max(1, ($0.count + chunk - 1) / chunk) }
        // firstFrame[i]: the number of frames received before step i's first.
        var counts = [0]
        for step in steps { counts.append(counts.last! + frames(step.into)) }
        let firstFrame = counts
        let progress = FrameProgress()
        let result: Result<Void, CollectiveError> = await withTaskGroup(of: Result<Void, CollectiveError>.self) { group in
            group.addTask {
                do throws(CollectiveError) {
                    for (i, step) in steps.enumerated() {
                        for k in 0..<frames(step.out) {
                            if i > 0 { try await progress.wait(until: firstFrame[i - 1] + k + 1) }
                            try await self.sendAllreduceFrame(buffer.slice(step.out), at: k * chunk, on: next, tag: step.tag, slot: step.slot)
                        }
                    }
                    return .success(())
                } catch { return .failure(error) }
            }
            group.addTask {
                do throws(CollectiveError) {
                    for step in steps {
                        for k in 0..<frames(step.into) {
                            try await self.receiveAllreduceFrame(into: buffer.slice(step.into), at: k * chunk, on: prev, tag: step.tag, add: step.add)
                            progress.advance()
                        }
                    }
                    return .success(())
                } catch { return .failure(error) }
            }
            var first: Result<Void, CollectiveError> = .success(())
            for await outcome in group {
                if case .failure = outcome, case .success = first {
                    first = outcome
                    group.cancelAll()
                    progress.cancel()
                }
            }
            return first
        }
        try result.get()
    }

    /// `pipeline` over byte streams, in one task: sends are queued on the next link as soon as
    /// the frame they forward has arrived (nng writes them in order meanwhile), and the task only
    /// ever waits for the next frame to receive. Per frame that is one wake-up (the frame's
    /// arrival) instead of two (the receiving task, then the sending task). A read is always
    /// posted while writes are outstanding, so two neighbours writing to each other never wait
    /// on each other. The same sends in the same order, so the same bits.
    func streamPipeline(_ steps: [RingStep], buffer: RingBuffer, next: StreamLink, prev: StreamLink) async throws(CollectiveError) {
        var order = PipelineOrder(steps: steps, chunk: chunk(buffer.element))
        var ticket: UInt64?
        do {
            try queueReadySends(&order, buffer: buffer, next: next, ticket: &ticket)
            while let (i, k) = order.nextReceive() {
                _ = try await receiveFrame(into: buffer.slice(steps[i].into), at: k * order.chunk, on: prev, tag: steps[i].tag, add: steps[i].add)
                order.received()
                try queueReadySends(&order, buffer: buffer, next: next, ticket: &ticket)
            }
            if let ticket { try await next.waitForSends(through: ticket) }
        } catch {
            // Queued writes still read the caller's buffer: end them before it can go. The
            // group is finished anyway.
            if let ticket {
                next.close()
                try? await next.waitForSends(through: ticket)
            }
            throw error
        }
    }

    /// Queues on `next` every frame `order` allows now; `ticket` is the last one queued (kept
    /// up to date frame by frame: if queueing fails, the caller must still wait for the rest).
    private func queueReadySends(_ order: inout PipelineOrder, buffer: RingBuffer, next: StreamLink, ticket: inout UInt64?) throws(CollectiveError) {
        while let (i, k) = order.nextSend() {
            let step = order.steps[i]
            let payload = buffer.slice(step.out).slice(k * order.chunk..<min((k + 1) * order.chunk, step.out.count))
            ticket = try next.enqueueSend(header(payload, at: k * order.chunk, tag: step.tag, slot: step.slot),
                                          payload: UnsafeRawBufferPointer(payload.bytes))
        }
    }

    /// Copies `root`'s buffer to every rank (down the ring).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) async throws(CollectiveError) {
        sequence += 1
        guard world > 1 else { return }
        let distance = (rank - root + world) % world
        if distance > 0 { try await receive(into: RingBuffer(buffer), tag: tag(phase: 3, step: 0), add: false) }
        if distance < world - 1 { try await send(RingBuffer(buffer), tag: tag(phase: 3, step: 0)) }
    }

    /// Sends `send` to the next rank while receiving `receive.count` elements from the previous
    /// one (added in, or copied), concurrently.
    func exchange(send: RingBuffer, receive: RingBuffer, tag: UInt64, add: Bool) async throws(CollectiveError) {
        guard let next, let prev else { return }
        try await exchange(send: send, on: next, receive: receive, on: prev, tag: tag, add: add)
    }

    /// The general form: send on one link while receiving on another (the close handshake
    /// runs it backwards).
    func exchange(send: RingBuffer, on out: RingLink, receive: RingBuffer, on inbound: RingLink,
                  tag: UInt64, add: Bool) async throws(CollectiveError) {
        let result: Result<Void, CollectiveError> = await withTaskGroup(of: Result<Void, CollectiveError>.self) { group in
            group.addTask {
                do throws(CollectiveError) { try await self.send(send, on: out, tag: tag); return .success(()) } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                do throws(CollectiveError) { try await self.receive(into: receive, on: inbound, tag: tag, add: add); return .success(()) } catch {
                    return .failure(error)
                }
            }
            var first: Result<Void, CollectiveError> = .success(())
            for await outcome in group {
                if case .failure = outcome, case .success = first {
                    first = outcome
                    group.cancelAll()
                }
            }
            return first
        }
        try result.get()
    }

    func send(_ values: RingBuffer, tag: UInt64) async throws(CollectiveError) {
        guard let next else { return }
        try await send(values, on: next, tag: tag)
    }

    /// Sends `values` in frames of at most one chunk (one empty frame for an empty buffer),
    /// payloads in the frames.
    func send(_ values: RingBuffer, on link: RingLink, tag: UInt64) async throws(CollectiveError) {
        var offset = 0
        repeat {
            offset += try await sendFrame(values, at: offset, on: link, tag: tag, slot: nil)
        } while offset < values.count
    }

    /// Sends the frame of `values` that starts at element `offset` (at most one chunk); returns
    /// its length. With a `slot`, the payload goes to the shared window at that byte position.
    func sendFrame(_ values: RingBuffer, at offset: Int, on link: RingLink, tag: UInt64, slot: Int?) async throws(CollectiveError) -> Int {
        let count = min(chunk(values.element), values.count - offset)
        let payload = values.slice(offset..<offset + count)
        try await link.send(header(payload, at: offset, tag: tag, slot: slot), payload: UnsafeRawBufferPointer(payload.bytes))
        return count
    }

    /// Sends a frame of an allreduce step: announced through the doorbell when there is one
    /// (the payload is in the window, or follows on the link when it goes inline).
    func sendAllreduceFrame(_ values: RingBuffer, at offset: Int, on link: RingLink, tag: UInt64, slot: Int?) async throws(CollectiveError) {
        let payload = values.slice(offset..<offset + min(chunk(values.element), values.count - offset))
        let h = header(payload, at: offset, tag: tag, slot: slot)
        if announce(h) { return }
        try await link.send(h, payload: UnsafeRawBufferPointer(payload.bytes))
    }

    /// `sendAllreduceFrame` on the calling thread.
    func sendAllreduceFrameBlocking(_ values: RingBuffer, at offset: Int, on link: MessageLink, tag: UInt64, slot: Int?) throws(CollectiveError) {
        let payload = values.slice(offset..<offset + min(chunk(values.element), values.count - offset))
        let h = header(payload, at: offset, tag: tag, slot: slot)
        if announce(h) { return }
        try link.sendBlocking(h, payload: UnsafeRawBufferPointer(payload.bytes))
    }

    /// Announces the next frame in the doorbell window, if this allreduce has one; true when
    /// that is all (nothing to send on the link).
    private func announce(_ h: TensorFrameHeader) -> Bool {
        guard let bell = bellOut else { return false }
        bell.announce(h, cell: bells.cell(half: half, ordinal: sendOrdinal), ready: allreduces)
        sendOrdinal += 1
        return h.shared != nil || h.count == 0
    }

    /// Receives a frame of an allreduce step: from the doorbell window when this allreduce has
    /// one (the payload from the shared window, or from the link when it went inline).
    func receiveAllreduceFrame(into values: RingBuffer, at offset: Int, on link: RingLink, tag: UInt64, add: Bool) async throws(CollectiveError) {
        if let bell = bellIn {
            let cell = bells.cell(half: half, ordinal: receiveOrdinal)
            receiveOrdinal += 1
            switch await bell.awaitAnnouncement(cell: cell, ready: allreduces, deadline: .now + timeout) {
            case true?: break
            case false?: throw .peerTimeout(rank: prevRank, operation: "receive", seconds: seconds(timeout))
            case nil: throw .cancelled
            }
            if try takeAnnounced(bell, cell: cell, into: values, at: offset, tag: tag, add: add) { return }
        }
        _ = try await receiveFrame(into: values, at: offset, on: link, tag: tag, add: add)
    }

    /// `receiveAllreduceFrame` on the calling thread.
    func receiveAllreduceFrameBlocking(into values: RingBuffer, at offset: Int, on link: RingLink, tag: UInt64, add: Bool) throws(CollectiveError) {
        if let bell = bellIn {
            let cell = bells.cell(half: half, ordinal: receiveOrdinal)
            receiveOrdinal += 1
            guard bell.awaitAnnouncement(cell: cell, ready: allreduces, spin: spin, deadline: .now + timeout) else {
                throw .peerTimeout(rank: prevRank, operation: "receive", seconds: seconds(timeout))
            }
            if try takeAnnounced(bell, cell: cell, into: values, at: offset, tag: tag, add: add) { return }
        }
        try receiveFrameBlocking(into: values, at: offset, on: link, tag: tag, add: add)
    }

    /// Takes the frame announced in `cell`: checks its header and adds or copies its payload
    /// from the shared window (true), or returns false when the payload follows on the link
    /// (which brings the header again, checked then).
    private func takeAnnounced(_ bell: SharedWindow, cell: Int, into values: RingBuffer, at offset: Int, tag: UInt64, add: Bool) throws(CollectiveError) -> Bool {
        let h: TensorFrameHeader
        do throws(WireError) {
            h = try TensorFrameHeader.decodeHeader(UnsafeRawBufferPointer(start: bell.base + cell, count: TensorFrameHeader.size), maxCount: chunkFloats)
        } catch {
            throw .malformed(rank: prevRank, error)
        }
        if h.shared == nil && h.count > 0 { return false }
        let destination = values.slice(offset..<offset + min(chunk(values.element), values.count - offset))
        if let payload = try check(h, from: prevRank, tag: tag, offset: offset, expected: destination) {
            deliver(payload, into: destination, add: add)
        }
        return true
    }

    /// The header for `payload`, which starts at element `offset` of its segment. With a
    /// `slot`, the payload is written to the shared window there and the header points to it.
    private func header(_ payload: RingBuffer, at offset: Int, tag: UInt64, slot: Int?) -> TensorFrameHeader {
        var header = TensorFrameHeader(count: UInt32(payload.count), epoch: epoch, tag: tag, offset: UInt64(offset),
                                       dtype: payload.element.dtype)
        if let window = slot == nil ? nil : outWindow, let slot, payload.count > 0 {
            let position = slot + offset * payload.element.size
            if window.base + position != UnsafeMutableRawPointer(mutating: payload.bytes.baseAddress!) { // not staged
                (window.base + position).copyMemory(from: payload.bytes.baseAddress!, byteCount: payload.bytes.count)
            }
            header.shared = SharedPayload(generation: outGeneration, position: UInt64(position))
        }
        return header
    }

    func receive(into values: RingBuffer, tag: UInt64, add: Bool) async throws(CollectiveError) {
        guard let prev else { return }
        try await receive(into: values, on: prev, tag: tag, add: add)
    }

    /// Receives `values.count` elements in frames (one empty frame for an empty buffer).
    func receive(into values: RingBuffer, on link: RingLink, tag: UInt64, add: Bool) async throws(CollectiveError) {
        var offset = 0
        repeat {
            offset += try await receiveFrame(into: values, at: offset, on: link, tag: tag, add: add)
        } while offset < values.count
    }

    /// Receives the frame of `values` that starts at element `offset` (added in, or copied);
    /// returns its length.
    func receiveFrame(into values: RingBuffer, at offset: Int, on link: RingLink, tag: UInt64, add: Bool) async throws(CollectiveError) -> Int {
        let expected = min(chunk(values.element), values.count - offset), from = link.peer
        let destination = values.slice(offset..<offset + expected)
        try await link.receive(into: destination, add: add) { (h) throws(CollectiveError) -> UnsafeRawBufferPointer? in
            try self.check(h, from: from, tag: tag, offset: offset, expected: destination)
        }
        return expected
    }

    /// `receiveFrame` on the calling thread (see `allreduceBlocking`).
    func receiveFrameBlocking(into values: RingBuffer, at offset: Int, on link: RingLink, tag: UInt64, add: Bool) throws(CollectiveError) {
        let destination = values.slice(offset..<offset + min(chunk(values.element), values.count - offset)), from = link.peer
        try link.receiveBlocking(into: destination, add: add) { (h) throws(CollectiveError) -> UnsafeRawBufferPointer? in
            try self.check(h, from: from, tag: tag, offset: offset, expected: destination)
        }
    }

    /// Checks a received frame's header (epoch, tag, place, element type and count) before its
    /// payload is used; returns the payload's bytes when they sit in the previous rank's window.
    private func check(_ h: TensorFrameHeader, from: Int, tag: UInt64, offset: Int, expected: RingBuffer) throws(CollectiveError) -> UnsafeRawBufferPointer? {
        if let start = firstFrameStart {
            // Only the receiving side touches this (see the class comment).
            firstFrameWaitSeconds += seconds(ContinuousClock.now - start)
            firstFrameStart = nil
        }
        guard h.epoch == epoch else { throw .stalePeer(rank: from, expectedEpoch: epoch, gotEpoch: h.epoch) }
        guard h.tag == tag, Int(h.offset) == offset, Int(h.count) == expected.count, h.dtype == expected.element.dtype else {
            throw .outOfSequence(rank: from, expectedTag: tag, gotTag: h.tag)
        }
        guard expected.count > 0, let shared = h.shared else {
            if expected.count > 0 { receivedInline = true }
            return nil
        }
        return try sharedPayload(shared, bytes: expected.bytes.count, from: from)
    }

    /// The bytes a frame points to in the previous rank's window, mapping a new generation of
    /// it when the frame names one. A position outside the window is refused, never read.
    private func sharedPayload(_ shared: SharedPayload, bytes: Int, from: Int) throws(CollectiveError) -> UnsafeRawBufferPointer {
        guard ownAddress.hasPrefix("ipc://") else {
            throw .malformed(rank: from, .invalidValue(field: "shared", value: UInt64(shared.generation)))
        }
        if inWindow == nil || inGeneration != shared.generation {
            let path = SharedWindow.path(receiver: ownAddress, epoch: epoch, generation: shared.generation)
            do throws(SharedWindowError) {
                inWindow = try SharedWindow.attach(path: path)
                inGeneration = shared.generation
            } catch {
                throw .peerFailed(rank: from, operation: "map shared window", detail: error.description)
            }
        }
        let window = inWindow!
        guard shared.position % 4 == 0, shared.position <= UInt64(window.size), UInt64(bytes) <= UInt64(window.size) - shared.position else {
            throw .malformed(rank: from, .lengthOutOfRange(field: "shared.position", declared: shared.position, limit: UInt64(window.size)))
        }
        return UnsafeRawBufferPointer(start: window.base + Int(shared.position), count: bytes)
    }
}

/// One step of the ring: send segment `out` to the next rank, receive `into` from the previous.
struct RingStep: Sendable {
    let out: Range<Int>
    let into: Range<Int>
    let tag: UInt64
    let add: Bool
    let slot: Int?
}

/// Frames received so far in one allreduce; the sending task waits here for the frame it
/// forwards. One waiter at a time (the sending task).
final class FrameProgress: Sendable {
    private let state = Mutex<(received: Int, cancelled: Bool, waiter: (target: Int, continuation: UnsafeContinuation<Bool, Never>)?)>(
        (0, false, nil))

    func advance() {
        let ready = state.withLock { s -> UnsafeContinuation<Bool, Never>? in
            s.received += 1
            guard let w = s.waiter, s.received >= w.target else { return nil }
            s.waiter = nil
            return w.continuation
        }
        ready?.resume(returning: true)
    }

    /// Wakes the waiter for good: the other half of the pipeline failed.
    func cancel() {
        let waiter = state.withLock { s -> UnsafeContinuation<Bool, Never>? in
            s.cancelled = true
            defer { s.waiter = nil }
            return s.waiter?.continuation
        }
        waiter?.resume(returning: false)
    }

    func wait(until target: Int) async throws(CollectiveError) {
        let reached = await withUnsafeContinuation { (c: UnsafeContinuation<Bool, Never>) in
            let now = state.withLock { s -> Bool? in
                if s.cancelled { return false }
                if s.received >= target { return true }
                s.waiter = (target, c)
                return nil
            }
            if let now { c.resume(returning: now) }
        }
        if !reached { throw .cancelled }
    }
}

/// What the ring moves: raw memory, its element type and its element count. `@unchecked
/// Sendable`: the pointer crosses into the send and receive tasks of one collective, which its
/// caller awaits before the memory can go; the tasks touch it as the class comment describes.
struct RingBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer?
    let count: Int
    let element: RingElement

    init(_ b: UnsafeMutableBufferPointer<Float>) { base = UnsafeMutableRawPointer(b.baseAddress); count = b.count; element = .float32 }
    init(_ b: UnsafeMutableBufferPointer<Int64>) { base = UnsafeMutableRawPointer(b.baseAddress); count = b.count; element = .int64 }
    private init(base: UnsafeMutableRawPointer?, count: Int, element: RingElement) { self.base = base; self.count = count; self.element = element }

    /// Elements `r` (indices into this buffer).
    func slice(_ r: Range<Int>) -> RingBuffer {
        precondition(r.lowerBound >= 0 && r.upperBound <= count)
        return RingBuffer(base: base.map { $0 + r.lowerBound * element.size }, count: r.count, element: element)
    }

    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count * element.size) }
}

/// The order of a ring pipeline run by one task or thread (over byte streams, or on the
/// calling thread), as counters: frame k of step i ≥ 1 may be sent once frame k of step i − 1
/// has arrived (it forwards it); step 0's frames at once. Frames are received in order, step
/// by step. Pure, so the order is unit-tested without sockets.
struct PipelineOrder {
    let steps: [RingStep]
    let chunk: Int
    private var sending = 0, frameOut = 0
    private var before = 0 // frames received before step `sending − 1`'s first
    private var arrived = 0
    private var receiving = 0, frameIn = 0

    init(steps: [RingStep], chunk: Int) {
        self.steps = steps; self.chunk = chunk
    }

    private func frames(_ r: Range<Int>) -> Int { max(1, (r.count + chunk - 1) / chunk) }

    /// The next frame (step, frame) that may be sent now, counted as sent; nil if none yet.
    mutating func nextSend() -> (Int, Int)? {
        guard sending < steps.count, sending == 0 || arrived >= before + frameOut + 1 else { return nil }
        let frame = (sending, frameOut)
        frameOut += 1
        if frameOut == frames(steps[sending].out) {
            if sending > 0 { before += frames(steps[sending - 1].into) }
            sending += 1
            frameOut = 0
        }
        return frame
    }

    /// The next frame (step, frame) to receive; nil when all have arrived.
    func nextReceive() -> (Int, Int)? { receiving < steps.count ? (receiving, frameIn) : nil }

    /// Counts the frame `nextReceive` named as arrived.
    mutating func received() {
        arrived += 1
        frameIn += 1
        if frameIn == frames(steps[receiving].into) { receiving += 1; frameIn = 0 }
    }
}
