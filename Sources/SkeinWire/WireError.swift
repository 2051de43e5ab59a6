/// Why a frame could not be decoded. Decoding is total: every malformed input ends here.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended before `field` (needed `needed` more bytes, had `available`).
    case truncated(field: String, needed: Int, available: Int)
    /// The frame does not start with the expected magic bytes.
    case badMagic(UInt16)
    /// The frame's protocol version is not one this build speaks.
    case unsupportedVersion(UInt8)
    /// The message kind byte names no known message.
    case unknownKind(UInt8)
    /// A length or count field claims more than the limit (or than the bytes present).
    case lengthOutOfRange(field: String, declared: UInt64, limit: UInt64)
    /// A string field is not valid UTF-8.
    case invalidUTF8(field: String)
    /// An enumerated field holds a value with no meaning.
    case invalidValue(field: String, value: UInt64)
    /// Bytes remain after the message ended.
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case let .truncated(field, needed, available): "frame truncated at \(field): needed \(needed) bytes, \(available) left"
        case let .badMagic(m): "not a Skein frame (magic 0x\(String(m, radix: 16)))"
        case let .unsupportedVersion(v): "unsupported protocol version \(v) (this build speaks \(Wire.protocolVersion))"
        case let .unknownKind(k): "unknown message kind \(k)"
        case let .lengthOutOfRange(field, declared, limit): "\(field) declares \(declared), limit \(limit)"
        case let .invalidUTF8(field): "\(field) is not valid UTF-8"
        case let .invalidValue(field, value): "\(field) has invalid value \(value)"
        case let .trailingBytes(n): "\(n) unexpected bytes after the message"
        }
    }
}

/// Protocol constants.
public enum Wire {
    /// Bumped on any incompatible change; peers with another version are refused at hello.
    /// 3: a tensor frame's last header word may point to the payload in shared memory.
    /// 4: ring links over tcp:// are nng byte streams (no pair-socket handshake), and tensor
    ///    frames may carry int64 (dtype 2, the exact reduction).
    public static let protocolVersion: UInt8 = 4
    /// Largest frame a decoder accepts unless told otherwise.
    public static let defaultMaxFrame = 256 << 20
    static let controlMagic: UInt16 = 0x4B53 // "SK" little-endian
    static let tensorMagic: UInt16 = 0x5453 // "ST"
}
