/// Appends little-endian primitives to a growable buffer. Encoding never fails.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    public mutating func write(_ v: Bool) { write(UInt8(v ? 1 : 0)) }
    public mutating func write(_ v: Double) { write(v.bitPattern) }
    public mutating func write(_ v: Float) { write(v.bitPattern) }
    /// A `UInt32` length, then the bytes.
    public mutating func write(_ v: [UInt8]) {
        write(UInt32(v.count))
        bytes.append(contentsOf: v)
    }
    /// A `UInt32` length, then the UTF-8 bytes.
    public mutating func write(_ v: String) {
        let utf8 = v.utf8
        write(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    /// A `UInt32` count, then each element.
    public mutating func write<T: WireCodable>(_ v: [T]) {
        write(UInt32(v.count))
        for e in v { e.encode(to: &self) }
    }
    public mutating func write(_ v: some WireCodable) { v.encode(to: &self) }

    mutating func patch(_ v: UInt32, at offset: Int) {
        withUnsafeBytes(of: v.littleEndian) { src in
            for i in 0..<4 { bytes[offset + i] = src[i] }
        }
    }
}

extension ByteWriter {
    /// A `UInt64` count, then the floats as raw little-endian bytes (one bulk copy).
    public mutating func write(floats: UnsafeBufferPointer<Float>) {
        write(UInt64(floats.count))
        #if _endian(little)
        bytes.append(contentsOf: UnsafeRawBufferPointer(floats))
        #else
        for f in floats { write(f.bitPattern) }
        #endif
    }
}
