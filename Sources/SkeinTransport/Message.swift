import CNNG

/// One nng message, uniquely owned. The body lives in nng's buffer: sending hands the buffer
/// to nng and receiving hands it to us, so large payloads are never copied into Swift arrays
/// and back.
///
/// `@unchecked Sendable` is sound because the type is noncopyable: exactly one owner can
/// reach the `nng_msg`, so it cannot be touched from two tasks at once.
public struct Message: ~Copyable, @unchecked Sendable {
    let raw: OpaquePointer

    /// A message whose body has `count` bytes, uninitialised contents.
    public init(count: Int) throws(TransportError) {
        var m: OpaquePointer?
        try check(nng_msg_alloc(&m, count), "allocate message")
        raw = m!
    }

    /// A message holding a copy of `bytes`.
    public init(bytes: some Collection<UInt8>) throws(TransportError) {
        try self.init(count: bytes.count)
        let body = UnsafeMutableRawBufferPointer(start: nng_msg_body(raw), count: bytes.count)
        body.copyBytes(from: bytes)
    }

    /// Takes ownership of a message nng handed us.
    init(taking raw: OpaquePointer) { self.raw = raw }

    deinit { nng_msg_free(raw) }

    /// Gives up ownership, e.g. when nng takes the message on a successful send.
    consuming func release() -> OpaquePointer {
        let r = raw
        discard self
        return r
    }

    /// Number of bytes in the body.
    public var count: Int { nng_msg_len(raw) }

    /// Reads the body in place.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: nng_msg_body(raw), count: count))
    }

    /// Writes the body in place.
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: nng_msg_body(raw), count: count))
    }

    /// Resizes the body, keeping its first `min(count, newCount)` bytes.
    public mutating func resize(to newCount: Int) throws(TransportError) {
        try check(nng_msg_realloc(raw, newCount), "resize message")
    }

    /// A copy of the body as an array (for small control messages).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}
