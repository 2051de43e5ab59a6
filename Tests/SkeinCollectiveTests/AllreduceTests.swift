import Foundation
import Testing
import SkeinTestSupport
@testable import SkeinCollective

/// x_r[i] of the test peers, and the exact sum over ranks in double precision.
func contribution(_ rank: Int, _ i: Int) -> Float { Float(10 * sin(0.37 * Double(i) + Double(rank))) }
func reference(_ i: Int, world: Int) -> Double { (0..<world).reduce(0.0) { $0 + Double(contribution($1, i)) } }

/// Runs `world` peer processes through `repeats` allreduces and returns each rank's output lines.
/// `addresses`: every rank's address (a ring mixing transports); else `tcpBase` or ipc:// paths.
func runRing(world: Int, length: Int, repeats: Int = 1, timeoutMs: Int = 5000, inline: Bool = false, tcpBase: Int? = nil,
             addresses: [String]? = nil, chunkFloats: Int? = nil, blocking: Bool = false, exact: Bool = false, mixed: Bool = false,
             staged: Bool = false, sharded: Bool = false) async throws -> [[String]] {
    let base = addresses?.joined(separator: ",") ?? tcpBase.map(String.init) ?? TemporaryDirectory.unique(prefix: "ring")
    let peers = try (0..<world).map { r in
        try ChildProcess("skein-testpeer", ["allreduce", String(r), String(world), base, String(length), String(repeats), String(timeoutMs)],
                         environment: (inline ? ["SKEIN_TESTPEER_INLINE": "1"] : [:]).merging(
                            chunkFloats.map { ["SKEIN_TESTPEER_CHUNK": String($0)] } ?? [:]) { a, _ in a }.merging(
                            blocking ? ["SKEIN_TESTPEER_BLOCKING": "1"] : [:]) { a, _ in a }.merging(
                            exact ? ["SKEIN_TESTPEER_EXACT": "1"] : [:]) { a, _ in a }.merging(
                            mixed ? ["SKEIN_TESTPEER_MIXED": "1"] : [:]) { a, _ in a }.merging(
                            staged ? ["SKEIN_TESTPEER_STAGED": "1"] : [:]) { a, _ in a }.merging(
                            sharded ? ["SKEIN_TESTPEER_SHARDED": "1"] : [:]) { a, _ in a })
    }
    defer { for p in peers { p.kill() } }
    for p in peers {
        let status = try await p.waitForExit(timeout: .seconds(120))
        if status != 0 { throw CollectiveTestError("rank exited \(status): \(p.output) \(p.log)") }
    }
    return peers.map(\.output)
}

struct CollectiveTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

@Suite("Ring allreduce (separate processes)", .serialized)
struct AllreduceTests {
    @Test("world sizes 1-4 × lengths 0, 1, 7, 1,000, 1,000,003: every rank gets the reference sum, bitwise equal across ranks and runs",
          arguments: [1, 2, 3, 4])
    func matrix(world: Int) async throws {
        for length in [0, 1, 7, 1_000, 1_000_003] {
            let first = try await runRing(world: world, length: length)
            let second = try await runRing(world: world, length: length)
            let hashes = first.map { $0.first { $0.hasPrefix("result ") } }
            #expect(Set(hashes).count == 1, "ranks disagree (world \(world), length \(length))")
            #expect(hashes == second.map { $0.first { $0.hasPrefix("result ") } }, "not bitwise repeatable (world \(world), length \(length))")
            for line in first[0] where line.hasPrefix("value ") {
                let parts = line.split(separator: " ")
                let i = Int(parts[1])!, v = Double(parts[2])!
                let want = reference(i, world: world)
                #expect(abs(v - want) <= 1e-5 * max(1, abs(want)) * Double(world), "world \(world) length \(length) i \(i): \(v) vs \(want)")
            }
        }
    }

    @Test("repeated allreduces on the same group stay in step and give the same bits")
    func repeated() async throws {
        let once = try await runRing(world: 3, length: 100_001, repeats: 1)
        let many = try await runRing(world: 3, length: 100_001, repeats: 20)
        #expect(once.map { $0.first { $0.hasPrefix("result") } } == many.map { $0.first { $0.hasPrefix("result") } })
    }

    @Test("payloads through shared memory, in the frames, or over tcp give the same bits; nothing is left in /dev/shm")
    func sharedMemoryMatchesInline() async throws {
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))
        for world in [2, 3] {
            let shared = try await runRing(world: world, length: 1_000_003, repeats: 3)
            let inline = try await runRing(world: world, length: 1_000_003, repeats: 3, inline: true)
            let tcp = try await runRing(world: world, length: 1_000_003, repeats: 3, tcpBase: 26_000 + 100 * world + Int.random(in: 0..<50) * 10)
            let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
            #expect(hash(shared) == hash(inline), "world \(world)")
            #expect(hash(shared) == hash(tcp), "world \(world)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: "/dev/shm").filter { $0.hasPrefix("skein-") && !before.contains($0) }
        #expect(left.isEmpty, "left in /dev/shm: \(left)")
    }

    @Test("a ring of ipc:// links within hosts and tcp:// links across gives the bits of an all-ipc ring: async or blocking, staged, many frames, changing sizes",
          arguments: [3, 4])
    func mixedTransports(world: Int) async throws {
        let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
        // Hosts a, a, b(, b): ranks 0 and 2 listen on tcp:// (their previous rank is on the other
        // host), ranks 1 and 3 on ipc:// (theirs shares the host).
        func mixed() throws -> [String] {
            let dir = TemporaryDirectory.unique(prefix: "mixed"), tcp = try freeTCPAddresses(world)
            return (0..<world).map { $0 % 2 == 0 ? tcp[$0] : "ipc://\(dir)-\($0).ipc" }
        }
        for (blocking, chunk, staged) in [(false, nil, false), (true, nil, false), (true, nil, true), (false, 1000, true)] as [(Bool, Int?, Bool)] {
            let ipc = try await runRing(world: world, length: 100_003, repeats: 3, chunkFloats: chunk, blocking: blocking)
            let both = try await runRing(world: world, length: 100_003, repeats: 3, addresses: try mixed(), chunkFloats: chunk,
                                         blocking: blocking, staged: staged)
            #expect(hash(both) == hash(ipc), "world \(world), blocking \(blocking), chunk \(chunk ?? 0), staged \(staged)")
        }
        let ipc = try await runRing(world: world, length: 0, mixed: true)
        let both = try await runRing(world: world, length: 0, addresses: try mixed(), mixed: true, staged: true)
        #expect(hash(both) == hash(ipc), "world \(world), changing sizes")
    }

    @Test("many frames per ring step (the steps pipeline frame by frame): the same bits as one frame per step", arguments: [2, 3, 4])
    func smallFrames(world: Int) async throws {
        for inline in [false, true] {
            let whole = try await runRing(world: world, length: 100_003, repeats: 3, inline: inline)
            let framed = try await runRing(world: world, length: 100_003, repeats: 3, inline: inline, chunkFloats: 1000)
            #expect(whole.map { $0.first { $0.hasPrefix("result ") } } == framed.map { $0.first { $0.hasPrefix("result ") } },
                    "world \(world), inline \(inline)")
        }
    }

    @Test("buffers staged in the shared window are sent in place with the bits of copied ones: blocking or not, one or many frames per step, changing sizes",
          arguments: [2, 3, 4])
    func stagedInPlace(world: Int) async throws {
        let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
        let inPlace = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("in-place ") } } }
        for (blocking, chunk) in [(true, nil), (false, nil), (true, 1000), (false, 1000)] as [(Bool, Int?)] {
            let copied = try await runRing(world: world, length: 100_003, repeats: 3, chunkFloats: chunk, blocking: blocking)
            let staged = try await runRing(world: world, length: 100_003, repeats: 3, chunkFloats: chunk, blocking: blocking, staged: true)
            #expect(hash(staged) == hash(copied), "world \(world), blocking \(blocking), chunk \(chunk ?? 0)")
            #expect(inPlace(staged) == Array(repeating: "in-place 3", count: world), "world \(world), blocking \(blocking), chunk \(chunk ?? 0)")
        }
        // Nine sizes, the window growing twice; sizes below the world size have no staging.
        let copied = try await runRing(world: world, length: 1, mixed: true)
        let staged = try await runRing(world: world, length: 1, mixed: true, staged: true)
        #expect(hash(staged) == hash(copied), "world \(world), mixed sizes")
        let stageable = [1_000, 7, 2, 100_003, 1_000, 1, 300_007, 5, 300_007].filter { $0 >= world }.count
        #expect(inPlace(staged) == Array(repeating: "in-place \(stageable)", count: world), "world \(world), mixed sizes")
    }

    @Test("allreduceBlocking from a plain thread gives the bits of allreduce: shared memory, inline, many frames, tcp", arguments: [2, 3])
    func blocking(world: Int) async throws {
        let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
        for (inline, chunk) in [(false, nil), (true, nil), (false, 1000), (true, 1000)] as [(Bool, Int?)] {
            let tasks = try await runRing(world: world, length: 100_003, repeats: 3, inline: inline, chunkFloats: chunk)
            let thread = try await runRing(world: world, length: 100_003, repeats: 3, inline: inline, chunkFloats: chunk, blocking: true)
            #expect(hash(tasks) == hash(thread), "world \(world), inline \(inline), chunk \(chunk ?? 0)")
        }
        // Hundreds of frames per step, more than the doorbell has cells: headers go over nng,
        // more than a socket holds while both neighbours send (a deadlock if one thread did both).
        let many = try await runRing(world: world, length: 1_000_003, repeats: 2, chunkFloats: 1000, blocking: true)
        #expect(hash(many) == hash(try await runRing(world: world, length: 1_000_003, repeats: 2, chunkFloats: 1000)), "world \(world), 1,000-float frames")
        let tcp = try await runRing(world: world, length: 1_000_003, repeats: 3, tcpBase: 27_000 + 100 * world + Int.random(in: 0..<50) * 10,
                                    blocking: true)
        #expect(hash(tcp) == hash(try await runRing(world: world, length: 1_000_003, repeats: 3)), "world \(world), tcp")
        // Over tcp the thread reads while nng writes the queued frames: hundreds of frames per
        // step queued both ways at once must not wait on each other.
        let tcpMany = try await runRing(world: world, length: 1_000_003, repeats: 2, tcpBase: 27_500 + 100 * world + Int.random(in: 0..<40) * 10,
                                        chunkFloats: 1000, blocking: true)
        #expect(hash(tcpMany) == hash(many), "world \(world), tcp, 1,000-float frames")
    }

    @Test("reduce-scatter then all-gather (a sharded optimiser's step) give the allreduce's bits: worlds 1-4, shared memory, staged, inline, many frames, tcp",
          arguments: [1, 2, 3, 4])
    func reduceScatterAllGather(world: Int) async throws {
        let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
        // Lengths below the world size leave some ranks an empty shard. Between the two halves
        // every element outside a rank's shard is overwritten with NaN, so the all-gather must
        // bring all of them.
        for length in [0, 1, 7, 1_000, 100_003] {
            let allreduce = try await runRing(world: world, length: length, repeats: 2)
            let sharded = try await runRing(world: world, length: length, repeats: 2, sharded: true)
            #expect(Set(hash(sharded)).count == 1, "ranks disagree (world \(world), length \(length))")
            #expect(hash(sharded) == hash(allreduce), "world \(world), length \(length)")
        }
        guard world > 1 else { return }
        let reference = hash(try await runRing(world: world, length: 100_003, repeats: 3))
        let staged = try await runRing(world: world, length: 100_003, repeats: 3, staged: true, sharded: true)
        #expect(hash(staged) == reference, "world \(world), staged")
        #expect(staged[0].contains { $0.hasPrefix("in-place ") && $0 != "in-place 0" }, "the reduce-scatter never sent in place: \(staged[0])")
        #expect(hash(try await runRing(world: world, length: 100_003, repeats: 3, inline: true, sharded: true)) == reference, "world \(world), inline")
        #expect(hash(try await runRing(world: world, length: 100_003, repeats: 3, chunkFloats: 1000, sharded: true)) == reference,
                "world \(world), 1,000-float frames")
        let tcp = try await runRing(world: world, length: 100_003, repeats: 3, tcpBase: 28_000 + 100 * world + Int.random(in: 0..<50) * 10,
                                    sharded: true)
        #expect(hash(tcp) == reference, "world \(world), tcp")
    }

    @Test("doorbells: allreduces of changing sizes (the window grows, tiny ones go inline), blocking on some ranks and async on others, give the bits of frames on the links",
          arguments: [2, 3, 4])
    func doorbellsAcrossSizesAndModes(world: Int) async throws {
        let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
        let shared = try await runRing(world: world, length: 0, mixed: true)
        let links = try await runRing(world: world, length: 0, inline: true, mixed: true)
        #expect(Set(hash(shared)).count == 1, "ranks disagree (world \(world))")
        #expect(hash(shared) == hash(links), "world \(world)")
        let framed = try await runRing(world: world, length: 0, chunkFloats: 1000, mixed: true)
        #expect(hash(framed) == hash(links), "world \(world), 1,000-float frames")
    }

    @Test("exact sums (fixed point, int64 allreduce): world sizes 1, 2, 3, 4 give the same bits, over shared memory, frames, tcp and from a plain thread")
    func exactAcrossWorldSizes() async throws {
        let hash = { (out: [[String]]) in out.map { $0.first { $0.hasPrefix("result ") } } }
        for length in [1, 7, 1_000, 300_007] {
            let one = hash(try await runRing(world: 1, length: length, exact: true))
            #expect(one.count == 1 && one[0] != nil)
            for world in [2, 3, 4] {
                let got = hash(try await runRing(world: world, length: length, exact: true))
                #expect(Set(got).count == 1 && got[0] == one[0], "world \(world), length \(length)")
            }
            let inline = hash(try await runRing(world: 3, length: length, inline: true, chunkFloats: 1000, exact: true))
            let tcp = hash(try await runRing(world: 2, length: length, tcpBase: 28_000 + Int.random(in: 0..<90) * 10, exact: true))
            let thread = hash(try await runRing(world: 4, length: length, blocking: true, exact: true))
            #expect(inline[0] == one[0] && tcp[0] == one[0] && thread[0] == one[0], "length \(length)")
        }
        // And the exact total is within the fixed-point precision of the true sum.
        let out = try await runRing(world: 2, length: 1_000, exact: true)
        for line in out[0] where line.hasPrefix("value ") {
            let parts = line.split(separator: " ")
            let i = Int(parts[1])!, v = Double(parts[2])!
            let want = (0..<12).reduce(0.0) { $0 + Double(Float(10 * sin(0.37 * Double(i) + Double($1)))) }
            #expect(abs(v - want) <= 1e-6 * max(1, abs(want)), "i \(i): \(v) vs \(want)")
        }
    }

    @Test("killing one rank in the middle of allreduces: the others report it, naming the rank, within the bound",
          arguments: ["ipc", "tcp", "tcp, blocking"])
    func killedRank(transport: String) async throws {
        let base = transport == "ipc" ? TemporaryDirectory.unique(prefix: "ringkill") : String(29_000 + Int.random(in: 0..<90) * 10)
        let timeoutMs = 1000
        let peers = try (0..<3).map { r in
            try ChildProcess("skein-testpeer", ["allreduce", String(r), "3", base, "2000000", "100000", String(timeoutMs)],
                             environment: transport.hasSuffix("blocking") ? ["SKEIN_TESTPEER_BLOCKING": "1"] : [:])
        }
        defer { for p in peers { p.kill() } }
        for p in peers { _ = try await p.waitForLine(startingWith: "joined") }
        try await Task.sleep(for: .milliseconds(300))
        peers[1].kill(SIGKILL)
        let killed = ContinuousClock.now
        for r in [0, 2] {
            let status = try await peers[r].waitForExit(timeout: .seconds(10))
            let detectedIn = ContinuousClock.now - killed
            #expect(status == 3, "rank \(r): \(peers[r].output)")
            let failure = peers[r].output.first { $0.hasPrefix("failed:") } ?? ""
            // Rank 0 waits on rank 2 or sends to rank 1; rank 2 waits on rank 1: each names a neighbour it lost.
            #expect(failure.contains("rank 1") || failure.contains("rank 2") || failure.contains("rank 0"), "\(failure)")
            #expect(detectedIn < .milliseconds(3 * timeoutMs + 1000), "rank \(r) took \(detectedIn)")
        }
        #expect(peers[2].output.first { $0.hasPrefix("failed:") }?.contains("rank 1") == true)
    }
}
