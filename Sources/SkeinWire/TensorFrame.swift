/// A frame carrying tensor values: a fixed 40-byte header, then `count` little-endian float32s
/// (dtype 1) or int64s (dtype 2, the fixed-point sums of the exact reduction).
///
/// Header: magic "ST" (2) ‖ version (1) ‖ dtype (1) ‖ count (4) ‖
/// epoch (8) ‖ tag (8) ‖ offset (8) ‖ shared (8). `epoch` fences stale peers of a
/// data-parallel group; `tag` identifies the step and chunk; `offset` is the position of the
/// first value in the whole tensor. The payload is written and read in place, never copied
/// into an intermediate array.
///
/// `shared` is 0 when the payload follows the header. Between two processes on one host the
/// payload may instead sit in the sender's shared-memory window (`SharedPayload`); the frame is
/// then the header alone.
public struct TensorFrameHeader: Equatable, Sendable {
    public static let size = 40
    public static let float32: UInt8 = 1
    public static let int64: UInt8 = 2

    public var count: UInt32
    /// `float32` or `int64`.
    public var dtype: UInt8
    public var epoch: UInt64
    public var tag: UInt64
    public var offset: UInt64
    /// Where the payload is when it is not inline.
    public var shared: SharedPayload?

    public init(count: UInt32, epoch: UInt64, tag: UInt64, offset: UInt64, shared: SharedPayload? = nil, dtype: UInt8 = float32) {
        self.count = count; self.epoch = epoch; self.tag = tag; self.offset = offset; self.shared = shared; self.dtype = dtype
    }

    /// Bytes per value.
    public var elementSize: Int { dtype == Self.int64 ? 8 : 4 }

    /// Bytes of the whole frame.
    public var frameSize: Int { Self.size + (shared == nil ? Int(count) * elementSize : 0) }

    /// Writes the header into the first `size` bytes of `buffer` (which must be that large).
    public func write(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.size)
        buffer.storeBytes(of: Wire.tensorMagic.littleEndian, toByteOffset: 0, as: UInt16.self)
        buffer.storeBytes(of: Wire.protocolVersion, toByteOffset: 2, as: UInt8.self)
        buffer.storeBytes(of: dtype, toByteOffset: 3, as: UInt8.self)
        buffer.storeBytes(of: count.littleEndian, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: epoch.littleEndian, toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: tag.littleEndian, toByteOffset: 16, as: UInt64.self)
        buffer.storeBytes(of: offset.littleEndian, toByteOffset: 24, as: UInt64.self)
        buffer.storeBytes(of: (shared?.encoded ?? 0).littleEndian, toByteOffset: 32, as: UInt64.self)
    }

    /// Encodes a whole frame (header + payload) into a new array; for tests and small tensors.
    public static func encode(_ header: TensorFrameHeader, values: [Float]) -> [UInt8] {
        precondition(Int(header.count) == values.count && header.shared == nil && header.dtype == float32)
        var out = [UInt8](repeating: 0, count: header.frameSize)
        out.withUnsafeMutableBytes { buf in
            header.write(into: buf)
            writePayload(values, into: UnsafeMutableRawBufferPointer(rebasing: buf[size...]))
        }
        return out
    }

    /// Validates a frame and returns its header; the payload is `frame[size...]`.
    /// Total: any malformed, truncated or oversized frame throws.
    public static func decode(_ frame: UnsafeRawBufferPointer, maxCount: Int = Wire.defaultMaxFrame / 4) throws(WireError) -> TensorFrameHeader {
        let header = try decodeHeader(frame, maxCount: maxCount)
        let payload = header.shared == nil ? Int(header.count) * header.elementSize : 0, remaining = frame.count - size
        if payload > remaining { throw .truncated(field: "payload", needed: payload, available: remaining) }
        if payload < remaining { throw .trailingBytes(remaining - payload) }
        return header
    }

    /// Validates the header at the start of `bytes` (at least `size` of them) and returns it,
    /// whatever follows: for a byte stream, which reads the header first and then exactly the
    /// payload it announces (`count` is checked against `maxCount` before anything is read).
    public static func decodeHeader(_ bytes: UnsafeRawBufferPointer, maxCount: Int = Wire.defaultMaxFrame / 4) throws(WireError) -> TensorFrameHeader {
        var r = ByteReader(bytes)
        let magic: UInt16 = try r.read("magic")
        guard magic == Wire.tensorMagic else { throw .badMagic(magic) }
        let version: UInt8 = try r.read("version")
        guard version == Wire.protocolVersion else { throw .unsupportedVersion(version) }
        let dtype: UInt8 = try r.read("dtype")
        guard dtype == float32 || dtype == int64 else { throw .invalidValue(field: "dtype", value: UInt64(dtype)) }
        let count: UInt32 = try r.read("count")
        let epoch: UInt64 = try r.read("epoch")
        let tag: UInt64 = try r.read("tag")
        let offset: UInt64 = try r.read("offset")
        let sharedBits: UInt64 = try r.read("shared")
        let shared = try SharedPayload(decoding: sharedBits)
        guard Int(count) <= maxCount else {
            throw .lengthOutOfRange(field: "count", declared: UInt64(count), limit: UInt64(maxCount))
        }
        return TensorFrameHeader(count: count, epoch: epoch, tag: tag, offset: offset, shared: shared, dtype: dtype)
    }

    /// Copies floats into a payload area as little-endian (a plain copy on little-endian hosts).
    public static func writePayload(_ values: UnsafeBufferPointer<Float>, into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= values.count * 4)
        #if _endian(little)
        if values.count > 0 { buffer.baseAddress!.copyMemory(from: values.baseAddress!, byteCount: values.count * 4) }
        #else
        for (i, v) in values.enumerated() { buffer.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        #endif
    }

    public static func writePayload(_ values: [Float], into buffer: UnsafeMutableRawBufferPointer) {
        values.withUnsafeBufferPointer { writePayload($0, into: buffer) }
    }

    /// Reads `count` floats from a payload area (which need not be aligned).
    public static func readPayload(_ buffer: UnsafeRawBufferPointer, into values: UnsafeMutableBufferPointer<Float>) {
        precondition(buffer.count >= values.count * 4)
        #if _endian(little)
        if values.count > 0 { UnsafeMutableRawPointer(values.baseAddress!).copyMemory(from: buffer.baseAddress!, byteCount: values.count * 4) }
        #else
        for i in 0..<values.count { values[i] = Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
        #endif
    }
}

/// A payload in the sender's shared-memory window: which window (a generation number, new
/// each time the sender needs a larger one) and the byte position in it. The receiver checks
/// the position against the window it mapped; the frame itself is only the header.
///
/// Encoded in the header's last word: bit 63 set ‖ generation (15 bits) ‖ position (48 bits).
public struct SharedPayload: Equatable, Sendable {
    public static let maxGeneration: UInt16 = 0x7FFF
    public static let maxPosition: UInt64 = (1 << 48) - 1
    public var generation: UInt16
    public var position: UInt64

    public init(generation: UInt16, position: UInt64) {
        precondition(generation <= Self.maxGeneration && position <= Self.maxPosition)
        self.generation = generation; self.position = position
    }

    var encoded: UInt64 { 1 << 63 | UInt64(generation) << 48 | position }

    /// nil for 0 (inline payload); any other word without bit 63 is malformed.
    init?(decoding bits: UInt64) throws(WireError) {
        if bits == 0 { return nil }
        guard bits >> 63 == 1 else { throw .invalidValue(field: "shared", value: bits) }
        generation = UInt16(truncatingIfNeeded: bits >> 48) & Self.maxGeneration
        position = bits & Self.maxPosition
    }
}
