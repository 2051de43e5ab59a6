// A peer process for the transport tests: it listens on an address with one pattern and
// echoes what it receives, so the tests exercise real process boundaries.
//
//   skein-testpeer rep-echo  ADDRESS [--tls CERT KEY CA]   reply with the request
//   skein-testpeer pair-echo ADDRESS                       send back every message
//   skein-testpeer pull-push PULL_ADDRESS PUSH_ADDRESS      forward pulled messages
//   skein-testpeer publish   ADDRESS                        publish "tick N" every 20 ms
//   skein-testpeer store-ingest PATH                        write metric batches (and a finished
//                                                           trial per batch) forever, printing
//                                                           "committed K" after each commit
//   skein-testpeer allreduce RANK WORLD BASE LENGTH REPEATS [TIMEOUT_MS]
//                                                           rank RANK of a ring on BASE-<r>.ipc (or
//                                                           tcp://127.0.0.1:<BASE+r> if BASE is a
//                                                           number); prints "result SHA256" and
//                                                           "value I V" lines, or "failed: ..."
//   skein-testpeer store-read PATH SECONDS                  query leaderboard and summary in a
//                                                           loop; print "reads N errors M"
//
// It prints "ready PORT" once listening (PORT is the bound TCP port, 0 for other
// transports) and runs until killed.
import Dispatch
import SkeinCollective
import SkeinStore
import SkeinTensor
import SkeinTransport
#if canImport(Glibc)
import Glibc
#endif

func fail(_ text: String) -> Never {
    let line = Array("skein-testpeer: \(text)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func ready(_ socket: Socket, _ listener: Listener) {
    let port = listener.address.hasPrefix("tcp://") || listener.address.hasPrefix("tls+tcp://") ? (try? socket.boundPort(of: listener)) ?? 0 : 0
    print("ready \(port)")
    fflush(nil) // all streams: `stdout` itself is a global Swift 6 rejects
}

var args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 2 else { fail("usage: skein-testpeer MODE ADDRESS [...]") }
let mode = args[0], address = args[1]
var tls: TLSConfiguration?
if let i = args.firstIndex(of: "--tls") {
    guard args.count >= i + 4 else { fail("--tls needs CERT KEY CA") }
    tls = TLSConfiguration(certificatePath: args[i + 1], keyPath: args[i + 2], certificateAuthorityPath: args[i + 3],
                           requirePeerCertificate: false)
}
let options = Socket.Options(defaultTimeout: nil)

do {
    switch mode {
    case "rep-echo":
        let socket = try Socket(.reply, options: options)
        ready(socket, try socket.listen(address, tls: tls))
        // Several contexts so concurrent requests are served concurrently.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                let ctx = try socket.makeContext()
                group.addTask {
                    while true {
                        let m = try await ctx.receive()
                        try await ctx.send(m)
                    }
                }
            }
            try await group.waitForAll()
        }
    case "pair-echo":
        let socket = try Socket(.pair, options: options)
        ready(socket, try socket.listen(address, tls: tls))
        while true {
            let m = try await socket.receive()
            try await socket.send(m)
        }
    case "pull-push":
        guard args.count >= 3 else { fail("pull-push needs PULL_ADDRESS PUSH_ADDRESS") }
        let pull = try Socket(.pull, options: options)
        let listener = try pull.listen(address)
        let push = try Socket(.push, options: options)
        try push.dial(args[2])
        ready(pull, listener)
        while true {
            let m = try await pull.receive()
            try await push.send(m)
        }
    case "publish":
        let socket = try Socket(.publish, options: options)
        ready(socket, try socket.listen(address))
        var n = 0
        while true {
            try await socket.send(try Message(bytes: Array("tick \(n)".utf8)))
            n += 1
            try await Task.sleep(for: .milliseconds(20))
        }
    case "allreduce":
        guard args.count >= 6, let rank = Int(args[1]), let world = Int(args[2]), let length = Int(args[4]), let repeats = Int(args[5]) else {
            fail("allreduce needs RANK WORLD BASE LENGTH REPEATS [TIMEOUT_MS]")
        }
        let base = args[3]
        let timeoutMs = args.count > 6 ? Int(args[6]) ?? 2000 : 2000
        // BASE: a TCP port base, an ipc:// path prefix, or every rank's address, comma-separated.
        let addresses = base.contains(",") ? base.split(separator: ",").map(String.init)
            : (0..<world).map { r in Int(base).map { "tcp://127.0.0.1:\($0 + r)" } ?? "ipc://\(base)-\(r).ipc" }
        do {
            // SKEIN_TESTPEER_INLINE=1: payloads in the frames even on one host (no shared memory).
            let inline = getenv("SKEIN_TESTPEER_INLINE").map { String(cString: $0) } == "1"
            // SKEIN_TESTPEER_CHUNK=N: frames of at most N floats (many frames per ring step).
            let chunk = getenv("SKEIN_TESTPEER_CHUNK").flatMap { Int(String(cString: $0)) } ?? 1 << 18
            let group = try await RingGroup(rank: rank, addresses: addresses, epoch: 7, timeout: .milliseconds(timeoutMs),
                                            chunkFloats: chunk, sharedMemory: !inline)
            print("joined")
            fflush(nil)
            // SKEIN_TESTPEER_BLOCKING=1: `allreduceBlocking` from a plain thread, as training calls it.
            let blocking = getenv("SKEIN_TESTPEER_BLOCKING").map { String(cString: $0) } == "1"
            // SKEIN_TESTPEER_EXACT=1: twelve contributions x_j (j = 0…11) are dealt round the ranks
            // (rank r takes j ≡ r mod world), summed exactly in fixed point and allreduced as
            // int64: the result must not depend on the world size.
            let exact = getenv("SKEIN_TESTPEER_EXACT").map { String(cString: $0) } == "1"
            // SKEIN_TESTPEER_MIXED=1: a sequence of allreduces of changing sizes (the shared
            // window grows; some too small for it), rank r calling allreduceBlocking on every
            // other one and allreduce on the rest; the result is all of them, concatenated.
            let mixed = getenv("SKEIN_TESTPEER_MIXED").map { String(cString: $0) } == "1"
            // SKEIN_TESTPEER_STAGED=1: float buffers come from `stagingBuffer` (in the shared
            // window, sent in place) where the group offers one; prints "in-place N" at the end.
            let staged = getenv("SKEIN_TESTPEER_STAGED").map { String(cString: $0) } == "1"
            // SKEIN_TESTPEER_SHARDED=1: reduceScatterBlocking then allGatherBlocking (from a plain
            // thread) in place of the allreduce, as a sharded optimiser's step does; between the
            // two, every element outside this rank's shard is overwritten with NaN, which the
            // all-gather must replace (not in a staged buffer: the next rank may still be reading
            // this rank's segments there, as it may until the rank's next collective).
            let sharded = getenv("SKEIN_TESTPEER_SHARDED").map { String(cString: $0) } == "1"
            func contribution(_ n: Int) -> FloatBuffer {
                let values = (staged ? group.stagingBuffer(count: n) : nil) ?? FloatBuffer(count: n)
                for i in 0..<n { values[i] = Float(10 * sin(0.37 * Double(i) + Double(rank))) }
                return values
            }
            var result = [Float]()
            for (k, n) in [1_000, 7, 2, 100_003, 1_000, 1, 300_007, 5, 300_007].enumerated() where mixed {
                let values = contribution(n)
                if (k + rank) % 2 == 0 {
                    let slot = PeerBuffer(buffer: values.buffer)
                    try await onPlainThread { try group.allreduceBlocking(slot.buffer) }
                } else {
                    try await group.allreduce(values.buffer)
                }
                result += values.array
            }
            for _ in 0..<repeats where exact {
                let sums = FixedPointSum(count: length, maxContributions: 12)
                for j in stride(from: rank, to: 12, by: world) {
                    let x = FloatBuffer((0..<length).map { i in Float(10 * sin(0.37 * Double(i) + Double(j))) })
                    if sums.add(x.pointer) != 0 { fail("contribution out of the exact range") }
                }
                if blocking {
                    let slot = PeerSums(buffer: sums.buffer)
                    try await onPlainThread { try group.allreduceBlocking(slot.buffer) }
                } else {
                    try await group.allreduce(sums.buffer)
                }
                let total = FloatBuffer(count: length)
                sums.write(into: total.pointer)
                result = total.array
            }
            for k in 0..<repeats where !exact && !mixed {
                // Rank r contributes x_r[i] = 10 sin(0.37 i + r).
                let values = contribution(length)
                if sharded {
                    let slot = PeerBuffer(buffer: values.buffer)
                    let shard = group.shard(count: length)
                    try await onPlainThread {
                        try group.reduceScatterBlocking(slot.buffer)
                        for i in 0..<length where !staged && !shard.contains(i) { slot.buffer[i] = .nan }
                        try group.allGatherBlocking(slot.buffer)
                    }
                } else if blocking {
                    let slot = PeerBuffer(buffer: values.buffer)
                    try await onPlainThread { try group.allreduceBlocking(slot.buffer) }
                } else {
                    try await group.allreduce(values.buffer)
                }
                // Every repeat sums the same contributions: a different result is a race.
                if k > 0 && values.array != result { print("failed: repeat \(k) differs from the one before"); fflush(nil); exit(3) }
                result = values.array
            }
            try await group.close()
            if staged { print("in-place \(group.inPlaceAllreduces)") }
            print("result \(Authentication.sha256Hex(result.withUnsafeBytes { Array($0) }))")
            for i in [0, 1, length / 2, length - 1] where i >= 0 && i < min(length, result.count) { print("value \(i) \(result[i])") }
            fflush(nil)
        } catch {
            print("failed: \(error)")
            fflush(nil)
            exit(3)
        }
    case "store-ingest":
        let store = try SQLiteRunStore(path: address)
        let sweep = try store.sweep(named: "ingest") ?? store.createSweep(NewSweep(
            name: "ingest", configText: "name: ingest", configHash: "h", seed: 1, codeVersion: "test", datasetHash: "none",
            objectiveMetric: "loss", direction: .minimize))
        print("ready 0")
        fflush(nil)
        var k = 0
        while true {
            let trial = try store.createTrial(NewTrial(sweepID: sweep.id, number: k, parametersJSON: "{\"k\":\(k)}", seed: UInt64(k)))
            let attempt = try store.startAttempt(trialID: trial.id, worker: "w", leaseExpiresAt: 0)
            var points: [MetricRow] = []
            for i in 0..<2000 {
                let name = i % 2 == 0 ? "loss" : "accuracy"
                let value = Double(k) + Double(i) / 10_000
                points.append(MetricRow(trialID: trial.id, attempt: attempt, name: name, step: Int64(i / 2), value: value, time: Double(i)))
            }
            try store.appendMetrics(points)
            _ = try store.finishAttempt(trialID: trial.id, attempt: attempt, outcome: AttemptOutcome(status: .completed, objective: Double(k % 97)), metrics: [])
            print("committed \(k)")
            fflush(nil)
            k += 1
        }
    case "store-read":
        guard args.count >= 3, let seconds = Double(args[2]) else { fail("store-read needs PATH SECONDS") }
        let deadline = ContinuousClock.now + .seconds(seconds)
        var reads = 0, errors = 0
        var lastError = ""
        let store = try SQLiteRunStore(path: address)
        while ContinuousClock.now < deadline {
            do {
                if let sweep = try store.sweep(named: "ingest") {
                    _ = try store.leaderboard(sweepID: sweep.id, top: 10)
                    _ = try store.summary(sweepID: sweep.id)
                }
                reads += 1
            } catch {
                errors += 1
                lastError = "\(error)"
            }
        }
        print("reads \(reads) errors \(errors) \(lastError)")
        fflush(nil)
        exit(errors == 0 ? 0 : 1)
    default:
        fail("unknown mode \(mode)")
    }
} catch {
    fail("\(error)")
}

/// A buffer handed to a plain thread while the task that owns it waits for that thread.
struct PeerBuffer: @unchecked Sendable { let buffer: UnsafeMutableBufferPointer<Float> }
struct PeerSums: @unchecked Sendable { let buffer: UnsafeMutableBufferPointer<Int64> }

/// Runs `work` on a thread outside Swift's pool (as a training thread calls the blocking
/// collectives) while the calling task waits.
func onPlainThread(_ work: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
        DispatchQueue.global().async { do { try work(); c.resume() } catch { c.resume(throwing: error) } }
    }
}
