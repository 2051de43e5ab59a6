import Foundation
import Testing
import SkeinTestSupport
@testable import SkeinTransport

/// Starts a `skein-testpeer` and returns it with the address to dial.
func startPeer(_ mode: String, _ address: String, _ extra: [String] = []) async throws -> (ChildProcess, String) {
    let peer = try ChildProcess("skein-testpeer", [mode, address] + extra)
    let line = try await peer.waitForLine(startingWith: "ready")
    var dial = address
    if address.hasSuffix(":0"), let port = line.split(separator: " ").last {
        dial = String(address.dropLast(1)) + port
    }
    return (peer, dial)
}

func payload(_ n: Int, seed: UInt8 = 7) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

/// Sends `count` concurrent requests through separate contexts and checks every echo.
func concurrentRoundTrips(_ socket: Socket, count: Int, size: Int) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for i in 0..<count {
            let ctx = try socket.makeContext()
            group.addTask {
                let body = payload(size, seed: UInt8(i % 251))
                let reply = try await ctx.request(try Message(bytes: body), timeout: .seconds(10))
                #expect(reply.bytes == body)
            }
        }
        try await group.waitForAll()
    }
}

@Suite("Transport")
struct TransportTests {
    @Test("request/reply with concurrent contexts over inproc")
    func inprocRoundTrip() async throws {
        let address = "inproc://skein-\(UUID().uuidString)"
        let server = try Socket(.reply)
        try server.listen(address)
        let client = try Socket(.request)
        try client.dial(address)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                let ctx = try server.makeContext()
                group.addTask {
                    while true {
                        let m: Message
                        do { m = try await ctx.receive() } catch {
                            if (error as? TransportError)?.code == .closed { return }
                            throw error
                        }
                        try await ctx.send(m)
                    }
                }
            }
            try await concurrentRoundTrips(client, count: 32, size: 100)
            server.close()
            try await group.waitForAll()
        }
    }

    @Test("request/reply to another process", arguments: ["ipc", "tcp"])
    func crossProcessRoundTrip(transport: String) async throws {
        let listen = transport == "ipc" ? TemporaryDirectory.ipcAddress() : "tcp://127.0.0.1:0"
        let (peer, address) = try await startPeer("rep-echo", listen)
        defer { peer.kill() }
        let client = try Socket(.request)
        try client.dial(address)
        try await concurrentRoundTrips(client, count: 16, size: 1000)
        try await concurrentRoundTrips(client, count: 2, size: 3 << 20)
    }

    @Test("pair link to another process carries a large payload both ways", arguments: ["ipc", "tcp"])
    func pairEcho(transport: String) async throws {
        let listen = transport == "ipc" ? TemporaryDirectory.ipcAddress() : "tcp://127.0.0.1:0"
        let (peer, address) = try await startPeer("pair-echo", listen)
        defer { peer.kill() }
        let socket = try Socket(.pair)
        try socket.dial(address)
        let body = payload(5 << 20)
        try await socket.send(try Message(bytes: body), timeout: .seconds(10))
        let back = try await socket.receive(timeout: .seconds(10))
        #expect(back.count == body.count)
        #expect(back.bytes == body)
    }

    @Test("push/pull through another process")
    func pushPull() async throws {
        let back = try Socket(.pull)
        let backListener = try back.listen("tcp://127.0.0.1:0")
        let backAddress = "tcp://127.0.0.1:\(try back.boundPort(of: backListener))"
        let (peer, address) = try await startPeer("pull-push", TemporaryDirectory.ipcAddress(), [backAddress])
        defer { peer.kill() }
        let push = try Socket(.push)
        try push.dial(address)
        for i in 0..<50 { try await push.send(try Message(bytes: [UInt8(i)]), timeout: .seconds(10)) }
        var seen: [UInt8] = []
        for _ in 0..<50 { seen.append(try await back.receive(timeout: .seconds(10)).bytes[0]) }
        #expect(seen == (0..<50).map { UInt8($0) })
    }

    @Test("subscribe receives another process's broadcasts")
    func publishSubscribe() async throws {
        let (peer, address) = try await startPeer("publish", TemporaryDirectory.ipcAddress())
        defer { peer.kill() }
        let sub = try Socket(.subscribe)
        try sub.dial(address)
        let m = try await sub.receive(timeout: .seconds(10))
        #expect(String(decoding: m.bytes, as: UTF8.self).hasPrefix("tick "))
    }

    @Test("a pending receive ends with .cancelled when its task is cancelled")
    func cancellation() async throws {
        let socket = try Socket(.pull)
        try socket.listen(TemporaryDirectory.ipcAddress())
        let start = ContinuousClock.now
        let task = Task { () throws(TransportError) -> Int in try await socket.receive(timeout: .seconds(30)).count }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let result = await task.result
        #expect(throws: TransportError(.cancelled, operation: "receive")) { try result.get() }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("a receive with a deadline ends with .timedOut")
    func timeout() async throws {
        let socket = try Socket(.pull)
        try socket.listen(TemporaryDirectory.ipcAddress())
        let start = ContinuousClock.now
        await #expect(throws: TransportError(.timedOut, operation: "receive")) {
            _ = try await socket.receive(timeout: .milliseconds(150))
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(100) && elapsed < .seconds(5))
    }

    @Test("closing a socket ends a pending receive with .closed")
    func closedWhilePending() async throws {
        let socket = try Socket(.pull)
        try socket.listen(TemporaryDirectory.ipcAddress())
        let pending = Task { () throws(TransportError) -> Int in try await socket.receive(timeout: .seconds(30)).count }
        try await Task.sleep(for: .milliseconds(100))
        socket.close()
        let result = await pending.result
        #expect(throws: TransportError(.closed, operation: "receive")) { try result.get() }
    }

    @Test("a listener sees its peer connect and hang up (orderly teardown)")
    func disconnectIsSeen() async throws {
        let address = TemporaryDirectory.ipcAddress()
        let listener = try Socket(.pair)
        try listener.listen(address)
        #expect(listener.connectionCount == 0)
        let dialer = try Socket(.pair)
        try dialer.dial(address)
        try await dialer.send(Message(bytes: [1, 2, 3]), timeout: .seconds(5))
        _ = try await listener.receive(timeout: .seconds(5))
        #expect(listener.connectionCount == 1)
        // Still connected: waiting gives up at the deadline.
        #expect(await listener.waitUntilDisconnected(timeout: .milliseconds(50)) == false)
        dialer.close()
        #expect(await listener.waitUntilDisconnected(timeout: .seconds(5)))
        #expect(listener.connectionCount == 0)
        listener.close()
    }

    @Test("the dialer reconnects after the listening process restarts")
    func reconnect() async throws {
        let address = TemporaryDirectory.ipcAddress()
        let client = try Socket(.request, options: .init(reconnectMin: .milliseconds(20), reconnectMax: .milliseconds(200)))
        try client.dial(address) // before anyone listens: the dialer keeps trying
        var (peer, _) = try await startPeer("rep-echo", address)
        try await concurrentRoundTrips(client, count: 1, size: 10)
        peer.kill()
        _ = try await peer.waitForExit()
        (peer, _) = try await startPeer("rep-echo", address)
        defer { peer.kill() }
        // A request in flight when the link dropped may be lost; a fresh one must get through.
        let deadline = ContinuousClock.now + .seconds(10)
        var delivered = false
        while !delivered && ContinuousClock.now < deadline {
            let ctx = try client.makeContext()
            do {
                let r = try await ctx.request(try Message(bytes: [1, 2, 3]), timeout: .milliseconds(500))
                delivered = r.bytes == [1, 2, 3]
            } catch {
                if error.code != .timedOut { throw error }
            }
        }
        #expect(delivered)
    }

    @Test("oversize messages are refused on send and dropped on receive")
    func oversize() async throws {
        let address = TemporaryDirectory.ipcAddress()
        let receiver = try Socket(.pull, options: .init(maxMessageSize: 1024))
        try receiver.listen(address)
        let small = try Socket(.push, options: .init(maxMessageSize: 1024))
        await #expect(throws: TransportError(.messageTooLarge(size: 4096, limit: 1024), operation: "send")) {
            try await small.send(try Message(count: 4096))
        }
        // A sender with a larger limit gets the frame out; the receiver must not deliver it.
        let big = try Socket(.push)
        try big.dial(address)
        try await big.send(try Message(count: 4096), timeout: .seconds(5))
        await #expect(throws: TransportError(.timedOut, operation: "receive")) {
            _ = try await receiver.receive(timeout: .milliseconds(300))
        }
        // The receiver is unharmed: after the dialer reconnects, a small message arrives. A
        // message nng hands to the dropped connection before the dialer notices is lost (push
        // does not redeliver; seen once in a loaded full run), so it is sent until one arrives.
        var arrived: [UInt8] = []
        for _ in 0..<20 where arrived.isEmpty {
            try await big.send(try Message(bytes: [42]), timeout: .seconds(5))
            arrived = (try? await receiver.receive(timeout: .milliseconds(500)))?.bytes ?? []
        }
        #expect(arrived == [42])
    }

    @Test("TLS round trip with a throwaway CA")
    func tlsRoundTrip() async throws {
        let dir = try TemporaryDirectory.make(prefix: "tls")
        try ThrowawayCA.make(in: dir)
        let (peer, address) = try await startPeer("rep-echo", "tls+tcp://127.0.0.1:0",
                                                  ["--tls", "\(dir)/server.crt", "\(dir)/server.key", "\(dir)/ca.crt"])
        defer { peer.kill() }
        let client = try Socket(.request)
        try client.dial(address, tls: TLSConfiguration(certificateAuthorityPath: "\(dir)/ca.crt", serverName: "localhost"))
        try await concurrentRoundTrips(client, count: 4, size: 2000)

        // A client that trusts another CA never completes the handshake.
        let other = try TemporaryDirectory.make(prefix: "tls-other")
        try ThrowawayCA.make(in: other)
        let stranger = try Socket(.request)
        try stranger.dial(address, tls: TLSConfiguration(certificateAuthorityPath: "\(other)/ca.crt", serverName: "localhost"))
        let ctx = try stranger.makeContext()
        // The request times out in send (no link ever forms) or in receive; never an answer.
        let error = await #expect(throws: TransportError.self) {
            _ = try await ctx.request(try Message(bytes: [1]), timeout: .milliseconds(500))
        }
        #expect(error?.code == .timedOut)
    }
}

/// Makes a CA and a server certificate for "localhost" with the openssl command.
enum ThrowawayCA {
    static func make(in dir: String) throws {
        let script = """
        set -e
        cd '\(dir)'
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=skein-test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile ext.cnf 2>/dev/null
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
