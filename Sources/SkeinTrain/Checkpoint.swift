import CZlib
import Foundation
import SkeinFiles
import SkeinWire

/// Everything needed to continue training exactly where it stopped: parameters, optimiser
/// state, the dropout RNG and the position (epoch, step). Continuing from a checkpoint gives
/// bitwise the same parameters as never having stopped.
///
/// File format (little-endian): "SKCK" ‖ format version (UInt32) ‖ body ‖ CRC-32 of all
/// preceding bytes (UInt32). The body holds the model description (JSON, checked on load),
/// the counters, the RNG state and the float buffers.
public struct Checkpoint: Equatable, Sendable {
    public static let formatVersion: UInt32 = 2
    static let magic: [UInt8] = Array("SKCK".utf8)

    public var layers: [Layer]
    public var loss: Loss
    public var optimizerKind: OptimizerConfig.Kind
    /// Epochs completed, and steps completed inside the current epoch.
    public var epoch: Int
    public var stepInEpoch: Int
    public var globalStep: Int
    public var optimizerStep: Int
    /// The current epoch's running loss sum, rows and correct count (see `Trainer`).
    public var epochLossSum: Double
    public var epochRows: Int
    public var epochCorrect: Int
    public var dropoutRNG: [UInt64]
    public var parameters: [Float]
    public var firstMoment: [Float]
    public var secondMoment: [Float]

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + 4 * (parameters.count + firstMoment.count + secondMoment.count))
        for b in Self.magic { w.write(b) }
        w.write(Self.formatVersion)
        // Sorted keys: the same model must give the same bytes in every process.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let modelJSON = (try? encoder.encode(layers)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        w.write(modelJSON)
        w.write(loss.rawValue)
        w.write(optimizerKind.rawValue)
        w.write(UInt64(epoch)); w.write(UInt64(stepInEpoch)); w.write(UInt64(globalStep)); w.write(UInt64(optimizerStep))
        w.write(epochLossSum); w.write(UInt64(epochRows)); w.write(UInt64(epochCorrect))
        for s in dropoutRNG { w.write(s) }
        parameters.withUnsafeBufferPointer { w.write(floats: $0) }
        firstMoment.withUnsafeBufferPointer { w.write(floats: $0) }
        secondMoment.withUnsafeBufferPointer { w.write(floats: $0) }
        let crc = w.bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        w.write(crc)
        return w.bytes
    }

    /// Decodes a checkpoint; `path` is only used in error messages.
    public static func decode(_ bytes: [UInt8], path: String) throws(TrainError) -> Checkpoint {
        func fail(_ reason: String) -> TrainError { .checkpoint(path: path, reason: reason) }
        guard bytes.count >= 12, Array(bytes[0..<4]) == magic else { throw fail("not a Skein checkpoint (bad magic)") }
        let version = UInt32(bytes[4]) | UInt32(bytes[5]) << 8 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 24
        guard version == formatVersion else {
            throw fail("format version \(version), this build reads version \(formatVersion)")
        }
        let body = bytes.count - 4
        let stored = UInt32(bytes[body]) | UInt32(bytes[body + 1]) << 8 | UInt32(bytes[body + 2]) << 16 | UInt32(bytes[body + 3]) << 24
        let actual = bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32(body))) }
        guard stored == actual else { throw fail("checksum mismatch (file damaged or truncated)") }
        do {
            return try bytes[..<body].withUnsafeBytes { raw in
                try Result { () throws(WireError) -> Checkpoint in
                    var r = ByteReader(raw)
                    try r.skip(8, "header")
                    let modelJSON = try r.readString("model")
                    let lossName = try r.readString("loss")
                    let optName = try r.readString("optimizer")
                    let epoch = try r.read("epoch", as: UInt64.self)
                    let stepInEpoch = try r.read("stepInEpoch", as: UInt64.self)
                    let globalStep = try r.read("globalStep", as: UInt64.self)
                    let optimizerStep = try r.read("optimizerStep", as: UInt64.self)
                    let epochLossSum = try r.readDouble("epochLossSum")
                    let epochRows = try r.read("epochRows", as: UInt64.self)
                    let epochCorrect = try r.read("epochCorrect", as: UInt64.self)
                    var rng = [UInt64]()
                    for _ in 0..<4 { rng.append(try r.read("rng", as: UInt64.self)) }
                    let params = try r.readFloats("parameters")
                    let first = try r.readFloats("firstMoment")
                    let second = try r.readFloats("secondMoment")
                    if r.remaining != 0 { throw WireError.trailingBytes(r.remaining) }
                    guard let layers = try? JSONDecoder().decode([Layer].self, from: Data(modelJSON.utf8)) else {
                        throw WireError.invalidValue(field: "model", value: 0)
                    }
                    guard let loss = Loss(rawValue: lossName) else { throw WireError.invalidValue(field: "loss", value: 0) }
                    guard let kind = OptimizerConfig.Kind(rawValue: optName) else { throw WireError.invalidValue(field: "optimizer", value: 0) }
                    return Checkpoint(layers: layers, loss: loss, optimizerKind: kind, epoch: Int(epoch), stepInEpoch: Int(stepInEpoch),
                                      globalStep: Int(globalStep), optimizerStep: Int(optimizerStep), epochLossSum: epochLossSum,
                                      epochRows: Int(epochRows), epochCorrect: Int(epochCorrect), dropoutRNG: rng,
                                      parameters: params, firstMoment: first, secondMoment: second)
                }.get()
            }
        } catch let e as WireError {
            throw fail("malformed: \(e)")
        } catch {
            throw fail("malformed: \(error)")
        }
    }

    /// Writes atomically: a temporary file in the same directory, fsync, rename, fsync the
    /// directory. A crash leaves either the old file or the new one, never a torn one.
    public func write(to path: String) throws(TrainError) {
        do {
            try DurableFile.write(encoded(), to: path)
        } catch {
            throw .io(path: error.path, reason: error.reason)
        }
    }

    public static func read(from path: String) throws(TrainError) -> Checkpoint {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, reason: "cannot read checkpoint") }
        return try decode([UInt8](data), path: path)
    }
}
