/// Reads little-endian primitives from a byte buffer with a bounds check on every read.
/// Lengths and counts are checked against the bytes actually present before anything is
/// allocated, so a hostile length field cannot make the decoder allocate.
public struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    public private(set) var offset: Int = 0

    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    public var remaining: Int { buffer.count - offset }

    mutating func need(_ n: Int, _ field: String) throws(WireError) {
        if n > remaining { throw .truncated(field: field, needed: n, available: remaining) }
    }

    public mutating func read<T: FixedWidthInteger>(_ field: String, as _: T.Type = T.self) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        try need(size, field)
        var v = T.zero
        withUnsafeMutableBytes(of: &v) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + size]))
        }
        offset += size
        return T(littleEndian: v)
    }
    public mutating func readBool(_ field: String) throws(WireError) -> Bool {
        let b = try read(field, as: UInt8.self)
        guard b <= 1 else { throw .invalidValue(field: field, value: UInt64(b)) }
        return b == 1
    }
    public mutating func readDouble(_ field: String) throws(WireError) -> Double { Double(bitPattern: try read(field, as: UInt64.self)) }
    public mutating func readFloat(_ field: String) throws(WireError) -> Float { Float(bitPattern: try read(field, as: UInt32.self)) }

    /// Reads a `UInt32` length and checks that many bytes are present.
    mutating func readLength(_ field: String, elementSize: Int = 1) throws(WireError) -> Int {
        let n = Int(try read(field, as: UInt32.self))
        let (total, overflow) = n.multipliedReportingOverflow(by: max(elementSize, 1))
        if overflow || total > remaining {
            throw .lengthOutOfRange(field: field, declared: UInt64(n), limit: UInt64(remaining / max(elementSize, 1)))
        }
        return n
    }
    public mutating func readBytes(_ field: String) throws(WireError) -> [UInt8] {
        let n = try readLength(field)
        defer { offset += n }
        return Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n]))
    }
    public mutating func readString(_ field: String) throws(WireError) -> String {
        let n = try readLength(field)
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n])
        guard let s = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8(field: field) }
        offset += n
        return s
    }
    public mutating func readArray<T: WireCodable>(of _: T.Type, _ field: String) throws(WireError) -> [T] {
        let n = try readLength(field, elementSize: T.minimumEncodedSize)
        var out = [T]()
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try T(from: &self)) }
        return out
    }
    public mutating func read<T: WireCodable>(_: T.Type) throws(WireError) -> T { try T(from: &self) }
}

/// A value with a binary encoding. `minimumEncodedSize` bounds array counts before allocation.
public protocol WireCodable: Sendable, Equatable {
    static var minimumEncodedSize: Int { get }
    func encode(to writer: inout ByteWriter)
    init(from reader: inout ByteReader) throws(WireError)
}

extension ByteReader {
    /// Reads a `UInt64` count and that many little-endian floats, checking the bytes exist first.
    public mutating func readFloats(_ field: String) throws(WireError) -> [Float] {
        let n = try read(field, as: UInt64.self)
        guard n <= UInt64(remaining / 4) else {
            throw .lengthOutOfRange(field: field, declared: n, limit: UInt64(remaining / 4))
        }
        let count = Int(n)
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBytes { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count * 4]))
        }
        #if !_endian(little)
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        #endif
        offset += count * 4
        return out
    }

    /// Skips `n` bytes (checked).
    public mutating func skip(_ n: Int, _ field: String) throws(WireError) {
        try need(n, field)
        offset += n
    }
}
