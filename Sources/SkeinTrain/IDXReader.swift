import Foundation
import CZlib

/// Reads IDX files (LeCun's MNIST format), gzip-compressed or not (zlib reads both).
///
/// Layout: 0x00 0x00, a type byte (0x08 = unsigned byte), a dimension count, the dimensions
/// as big-endian UInt32, then the data. Every failure names the file and, for short data,
/// the record where it ran out.
public enum IDXReader {
    public struct Array: Sendable {
        public var dimensions: [Int]
        public var bytes: [UInt8]
        /// Elements per record (product of all dimensions but the first).
        public var recordSize: Int { dimensions.dropFirst().reduce(1, *) }
    }

    public static func read(_ path: String, maxBytes: Int = 1 << 30) throws(DataError) -> Array {
        guard let gz = gzopen(path, "rb") else { throw DataError(file: path, reason: "cannot open") }
        defer { gzclose(gz) }
        func readExactly(_ n: Int) throws(DataError) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: n)
            var got = 0
            while got < n {
                let r = out.withUnsafeMutableBytes { gzread(gz, $0.baseAddress! + got, UInt32(min(n - got, 1 << 30))) }
                if r < 0 { throw DataError(file: path, reason: "not a readable gzip or IDX file") }
                if r == 0 { break }
                got += Int(r)
            }
            return got == n ? out : Swift.Array(out[..<got])
        }
        let magic = try readExactly(4)
        guard magic.count == 4 else { throw DataError(file: path, reason: "truncated header (\(magic.count) of 4 magic bytes)") }
        guard magic[0] == 0, magic[1] == 0 else {
            throw DataError(file: path, reason: String(format: "wrong magic number 0x%02x%02x%02x%02x (expected 0x0000 then type and rank)", magic[0], magic[1], magic[2], magic[3]))
        }
        guard magic[2] == 0x08 else { throw DataError(file: path, reason: "unsupported element type 0x\(String(magic[2], radix: 16)) (only unsigned byte, 0x08)") }
        let rank = Int(magic[3])
        guard rank >= 1, rank <= 4 else { throw DataError(file: path, reason: "unsupported rank \(rank)") }
        let dimBytes = try readExactly(4 * rank)
        guard dimBytes.count == 4 * rank else { throw DataError(file: path, reason: "truncated header (dimensions)") }
        var dims = [Int]()
        for i in 0..<rank {
            dims.append(Int(dimBytes[4 * i]) << 24 | Int(dimBytes[4 * i + 1]) << 16 | Int(dimBytes[4 * i + 2]) << 8 | Int(dimBytes[4 * i + 3]))
        }
        let total = dims.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        guard total <= maxBytes else { throw DataError(file: path, reason: "declares \(total) bytes, more than the limit \(maxBytes)") }
        let data = try readExactly(total)
        let recordSize = max(dims.dropFirst().reduce(1, *), 1)
        if data.count < total {
            throw DataError(file: path, record: data.count / recordSize,
                            reason: "truncated: header declares \(dims[0]) records, data ends inside record \(data.count / recordSize)")
        }
        return Array(dimensions: dims, bytes: data)
    }

    /// Images and labels as a classification data set, pixels scaled to [0, 1].
    public static func loadClassification(images: String, labels: String, classCount: Int = 10, name: String) throws(DataError) -> Dataset {
        let x = try read(images), y = try read(labels)
        guard y.dimensions.count == 1 else { throw DataError(file: labels, reason: "labels must be rank 1, got rank \(y.dimensions.count)") }
        guard x.dimensions[0] == y.dimensions[0] else {
            throw DataError(file: labels, reason: "\(y.dimensions[0]) labels for \(x.dimensions[0]) images in \(images)")
        }
        var labelsOut = [Int32]()
        labelsOut.reserveCapacity(y.bytes.count)
        for (i, b) in y.bytes.enumerated() {
            guard Int(b) < classCount else { throw DataError(file: labels, record: i, reason: "label \(b) outside 0..<\(classCount)") }
            labelsOut.append(Int32(b))
        }
        let features = x.bytes.map { Float($0) * (1 / 255) }
        return Dataset(name: name, features: features, featureCount: x.recordSize, targets: .classes(labelsOut, classCount: classCount))
    }
}
