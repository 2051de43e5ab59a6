import CNNG

/// The one error type of the transport. nng's integer codes are mapped here, once, so
/// callers can tell a timeout, a cancellation and a closed socket apart.
public struct TransportError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, independent of the operation.
    public enum Code: Equatable, Sendable {
        /// The per-call deadline passed before the operation completed.
        case timedOut
        /// The calling task was cancelled (or the operation was aborted).
        case cancelled
        /// The socket or context was closed.
        case closed
        /// A message is larger than the socket's maximum message size.
        case messageTooLarge(size: Int, limit: Int)
        /// The address could not be parsed or its scheme is not supported.
        case invalidAddress
        /// The address is already in use by another listener.
        case addressInUse
        /// A peer refused the connection (nobody listening).
        case connectionRefused
        /// The operation is not valid in the protocol's current state (e.g. a reply without a request).
        case protocolState
        /// TLS configuration or handshake failed.
        case tls
        /// A file named in the configuration could not be read.
        case fileUnreadable(path: String)
        /// Any other nng error, with its code and nng's own text.
        case nng(Int32, String)
    }

    public let code: Code
    /// The operation that failed, e.g. `"receive"` or `"listen"`.
    public let operation: String
    /// The address involved, when there is one.
    public let address: String?

    public init(_ code: Code, operation: String, address: String? = nil) {
        self.code = code
        self.operation = operation
        self.address = address
    }

    /// Maps an nng return code (never 0) to a `TransportError`.
    static func fromNNG(_ rv: Int32, operation: String, address: String? = nil) -> TransportError {
        let code: Code
        switch UInt32(rv) {
        case NNG_ETIMEDOUT.rawValue: code = .timedOut
        case NNG_ECANCELED.rawValue: code = .cancelled
        case NNG_ECLOSED.rawValue: code = .closed
        case NNG_EMSGSIZE.rawValue: code = .messageTooLarge(size: -1, limit: -1)
        case NNG_EADDRINVAL.rawValue, NNG_ENOTSUP.rawValue: code = .invalidAddress
        case NNG_EADDRINUSE.rawValue: code = .addressInUse
        case NNG_ECONNREFUSED.rawValue: code = .connectionRefused
        case NNG_ESTATE.rawValue: code = .protocolState
        case NNG_ECRYPTO.rawValue, NNG_EPEERAUTH.rawValue: code = .tls
        default: code = .nng(rv, String(cString: nng_strerror(rv)))
        }
        return TransportError(code, operation: operation, address: address)
    }

    public var description: String {
        let what: String
        switch code {
        case .timedOut: what = "timed out"
        case .cancelled: what = "cancelled"
        case .closed: what = "socket closed"
        case let .messageTooLarge(size, limit):
            what = size >= 0 ? "message of \(size) bytes exceeds the limit of \(limit) bytes" : "message too large"
        case .invalidAddress: what = "invalid or unsupported address"
        case .addressInUse: what = "address already in use"
        case .connectionRefused: what = "connection refused"
        case .protocolState: what = "operation not valid in the protocol's current state"
        case .tls: what = "TLS failure"
        case let .fileUnreadable(path): what = "cannot read \(path)"
        case let .nng(rv, text): what = "nng error \(rv): \(text)"
        }
        if let address { return "\(operation) \(address): \(what)" }
        return "\(operation): \(what)"
    }
}

/// Throws the mapped error unless `rv` is 0.
@inline(__always)
func check(_ rv: Int32, _ operation: String, address: String? = nil) throws(TransportError) {
    if rv != 0 { throw TransportError.fromNNG(rv, operation: operation, address: address) }
}
