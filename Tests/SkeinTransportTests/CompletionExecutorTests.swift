import Foundation
import Synchronization
import Testing
import SkeinTestSupport
@testable import SkeinTransport

/// Tasks that prefer `CompletionExecutor` resume on nng's completion threads. These tests run
/// the transport's operations that way and check nothing is lost, nothing deadlocks and
/// cancellation and deadlines still hold.
@Suite("Transport on nng's completion threads (CompletionExecutor)")
struct CompletionExecutorTests {
    @Test("request/reply round trips to another process, one socket and many contexts, lose nothing", arguments: ["ipc", "tcp"])
    func roundTrips(transport: String) async throws {
        let listen = transport == "ipc" ? TemporaryDirectory.ipcAddress() : "tcp://127.0.0.1:0"
        let (peer, address) = try await startPeer("rep-echo", listen)
        defer { peer.kill() }
        try await withTaskExecutorPreference(CompletionExecutor.shared) {
            let client = try Socket(.request, options: Socket.Options(defaultTimeout: .seconds(10)))
            try client.dial(address)
            for i in 0..<2000 {
                let body = payload(64, seed: UInt8(truncatingIfNeeded: i))
                try await client.send(try Message(bytes: body))
                #expect(try await client.receive().bytes == body)
            }
            try await concurrentRoundTrips(client, count: 16, size: 1000)
        }
    }

    @Test("a reply socket and a request socket in this process: 5,000 round trips, each answered once")
    func inProcessReplies() async throws {
        let address = TemporaryDirectory.ipcAddress()
        let rep = try Socket(.reply, options: Socket.Options(defaultTimeout: .seconds(10)))
        try rep.listen(address)
        let req = try Socket(.request, options: Socket.Options(defaultTimeout: .seconds(10)))
        try req.dial(address)
        let n = 5000
        let server = Task(executorPreference: CompletionExecutor.shared) { () throws -> Int in
            for _ in 0..<n { try await rep.send(try await rep.receive()) }
            return n
        }
        try await withTaskExecutorPreference(CompletionExecutor.shared) {
            for i in 0..<n {
                let body = Array("request \(i)".utf8)
                try await req.send(try Message(bytes: body))
                #expect(try await req.receive().bytes == body)
            }
        }
        #expect(try await server.value == n)
    }

    @Test("a task that drops the last reference to its sockets on a completion thread does not deadlock")
    func closeOnCompletionThread() async throws {
        let start = ContinuousClock.now
        var addresses: [String] = []
        for _ in 0..<20 {
            let address = TemporaryDirectory.ipcAddress()
            addresses.append(address)
            let finished = Flag()
            _ = Task(executorPreference: CompletionExecutor.shared) { () throws in
                let pull = try Socket(.pull)
                try pull.listen(address)
                let push = try Socket(.push)
                try push.dial(address)
                try await push.send(try Message(bytes: [1, 2, 3]))
                _ = try await pull.receive(timeout: .seconds(10))
                finished.set()
                // Resumed by the receive's completion: both sockets go away on nng's thread.
            }
            // Polled, not awaited: a deadlock then fails the test instead of hanging the run.
            let deadline = ContinuousClock.now + .seconds(10)
            while !finished.isSet && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            #expect(finished.isSet, "the task did not finish: closing on a completion thread deadlocked")
            if !finished.isSet { return }
        }
        // The closes ran (on another thread): every address can be listened on again.
        for address in addresses {
            var reopened = false
            while !reopened && ContinuousClock.now - start < .seconds(20) {
                if let s = try? Socket(.pull), (try? s.listen(address)) != nil { reopened = true } else { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(reopened, "\(address) still held")
        }
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test("cancellation and deadlines hold on completion threads")
    func cancellationAndDeadline() async throws {
        let socket = try Socket(.pull)
        try socket.listen(TemporaryDirectory.ipcAddress())
        let pending = Task(executorPreference: CompletionExecutor.shared) { () throws -> Int in
            try await socket.receive(timeout: .seconds(30)).count
        }
        try await Task.sleep(for: .milliseconds(100))
        pending.cancel()
        let result = await pending.result
        #expect(throws: TransportError(.cancelled, operation: "receive")) { try result.get() }
        let start = ContinuousClock.now
        let timed = Task(executorPreference: CompletionExecutor.shared) { () throws -> Int in
            try await socket.receive(timeout: .milliseconds(150)).count
        }
        await #expect(throws: TransportError(.timedOut, operation: "receive")) { try await timed.value }
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}

/// A flag set by one task and polled by another.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
