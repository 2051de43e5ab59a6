import SkeinWire

/// Errors a control call can end with, beyond the transport's own.
public enum ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    case transport(TransportError)
    case malformedReply(WireError)
    case refused(Refusal.Reason, String)
    case unexpectedReply(ControlMessage.Kind)

    public var description: String {
        switch self {
        case let .transport(e): e.description
        case let .malformedReply(e): "malformed reply: \(e)"
        case let .refused(reason, detail): "refused (\(reason)): \(detail)"
        case let .unexpectedReply(k): "unexpected reply \(k)"
        }
    }
}

/// A request/reply client for control messages. Each call uses its own nng context, so calls
/// from many tasks run concurrently over one socket. The dialer reconnects by itself.
public final class ControlClient: Sendable {
    public let address: String
    let socket: Socket

    public init(address: String, tls: TLSConfiguration? = nil, options: Socket.Options = Socket.Options()) throws(TransportError) {
        self.address = address
        socket = try Socket(.request, options: options)
        try socket.dial(address, tls: tls)
    }

    public func close() { socket.close() }

    /// Sends `message` and returns the decoded reply. A `Refusal` reply is thrown as `.refused`.
    public func call(_ message: ControlMessage, timeout: Duration = .seconds(10)) async throws(ControlError) -> ControlMessage {
        let reply: Message
        do {
            let ctx = try socket.makeContext()
            defer { ctx.close() }
            reply = try await ctx.request(try Message(bytes: message.encoded()), timeout: timeout)
        } catch {
            throw .transport(error)
        }
        let decoded: ControlMessage
        do {
            decoded = try reply.withUnsafeBytes { (b) throws(WireError) in try ControlMessage.decode(b) }
        } catch {
            throw .malformedReply(error)
        }
        if case let .refusal(r) = decoded { throw .refused(r.reason, r.detail) }
        return decoded
    }

    /// Runs the hello / challenge / proven-hello handshake and returns the welcome.
    public func authenticate(token: [UInt8], role: Role, name: String, host: String, slots: Int,
                             timeout: Duration = .seconds(10)) async throws(ControlError) -> Welcome {
        let first = try await call(.hello(Hello(role: role, name: name, host: host, slots: UInt32(slots))), timeout: timeout)
        guard case let .challenge(c) = first else { throw .unexpectedReply(first.kind) }
        let proof = Authentication.proof(token: token, nonce: c.nonce, role: role, name: name)
        let second = try await call(.hello(Hello(role: role, name: name, host: host, slots: UInt32(slots), nonce: c.nonce, proof: proof)),
                                    timeout: timeout)
        guard case let .welcome(w) = second else { throw .unexpectedReply(second.kind) }
        return w
    }
}
