import ArgumentParser
import Foundation
import SkeinTrain
import Yams

/// Turns a typed error into one clear line and a non-zero exit.
func cli<T>(_ body: () throws(TrainError) -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw ValidationError(error.description)
    }
}

/// Reads and validates a training config; errors name the file and, for YAML problems, the line.
func loadTrainConfig(_ path: String) throws -> TrainConfig {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
        throw ValidationError("\(path): cannot read the file")
    }
    let cfg: TrainConfig
    do {
        cfg = try YAMLDecoder().decode(TrainConfig.self, from: text)
    } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.dataCorrupted(ctx), let DecodingError.valueNotFound(_, ctx) {
        throw ValidationError("\(path): \(codingPath(ctx.codingPath)): \(ctx.debugDescription)")
    } catch let DecodingError.keyNotFound(key, ctx) {
        throw ValidationError("\(path): \(codingPath(ctx.codingPath + [key])): required field missing")
    } catch let e as YamlError {
        throw ValidationError("\(path): \(e)")
    }
    try cli { () throws(TrainError) in try cfg.validate() }
    return cfg
}

func codingPath(_ path: [CodingKey]) -> String {
    path.isEmpty ? "(top level)" : path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        .replacingOccurrences(of: ".[", with: "[")
}
