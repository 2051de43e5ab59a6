import Logging
import SkeinTransport
import SkeinWire

/// Serves a `Coordinator` on a reply socket: `contexts` concurrent request handlers and a
/// timer that drives failure detection. Runs until its task is cancelled.
///
/// Malformed requests (garbage bytes, unknown kinds, wrong versions) are answered with a
/// `Refusal` and logged; they never reach the coordinator's state.
public struct CoordinatorServer: Sendable {
    public let coordinator: Coordinator
    public let address: String
    public let tls: TLSConfiguration?
    public let contexts: Int
    let log: Logger

    public init(coordinator: Coordinator, address: String, tls: TLSConfiguration? = nil, contexts: Int = 16,
                logger: Logger = Logger(label: "skein.coordinator")) {
        self.coordinator = coordinator; self.address = address; self.tls = tls; self.contexts = contexts; self.log = logger
    }

    /// Listens and serves; `onListening` gets the bound address (with the real TCP port).
    public func run(onListening: @Sendable (String) -> Void = { _ in }) async throws {
        let socket = try Socket(.reply, options: Socket.Options(maxMessageSize: 64 << 20, defaultTimeout: nil))
        defer { socket.close() }
        let listener = try socket.listen(address, tls: tls)
        var bound = address
        if address.hasSuffix(":0") { bound = String(address.dropLast(1)) + String(try socket.boundPort(of: listener)) }
        onListening(bound)
        let interval = coordinator.settings.registry.heartbeatInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<contexts {
                let ctx = try socket.makeContext()
                group.addTask { try await serve(ctx) }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(Int(interval * 500)))
                    do { try await coordinator.tick() } catch { log.error("tick: \(error)") }
                }
            }
            do {
                try await group.next()
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    private func serve(_ ctx: Context) async throws {
        while true {
            let decoded: Result<ControlMessage, WireError>
            do {
                let request = try await ctx.receive(timeout: nil)
                decoded = request.withUnsafeBytes { b in Result { () throws(WireError) in try ControlMessage.decode(b) } }
                if case let .failure(e) = decoded { log.warning("refused a malformed request (\(request.count) bytes): \(e)") }
            } catch {
                if error.code == .cancelled || error.code == .closed { return }
                log.warning("receive: \(error)")
                continue
            }
            let reply: ControlMessage
            switch decoded {
            case let .success(message): reply = await coordinator.handle(message)
            case let .failure(e): reply = .refusal(Refusal(.malformed, "malformed request: \(e)"))
            }
            do {
                try await ctx.send(try Message(bytes: reply.encoded()), timeout: .seconds(10))
            } catch {
                if error.code == .cancelled || error.code == .closed { return }
                log.warning("reply: \(error)")
            }
        }
    }
}
