import Foundation
import SkeinTrain
import Yams

/// Decodes YAML config files into `Codable` values and reports problems with file, line,
/// column and field path.
public enum YAMLConfig {
    /// Parses `yaml` (from `file`, used in messages) into `T`.
    public static func decode<T: Decodable>(_: T.Type, yaml: String, file: String) throws(ConfigError) -> T {
        let root = try compose(yaml: yaml, file: file)
        do {
            return try YAMLDecoder().decode(T.self, from: root)
        } catch let DecodingError.typeMismatch(type, ctx) {
            throw ConfigError([problem(file: file, root: root, path: ctx.codingPath, message: "expected \(describe(type))\(found(root, ctx.codingPath))")])
        } catch let DecodingError.valueNotFound(type, ctx) {
            throw ConfigError([problem(file: file, root: root, path: ctx.codingPath, message: "expected \(describe(type)), found nothing")])
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw ConfigError([problem(file: file, root: root, path: ctx.codingPath + [key], message: "required field is missing")])
        } catch let DecodingError.dataCorrupted(ctx) {
            throw ConfigError([problem(file: file, root: root, path: ctx.codingPath, message: cleaned(ctx.debugDescription, found: found(root, ctx.codingPath)))])
        } catch {
            throw ConfigError([ConfigProblem(file: file, field: "", message: "\(error)")])
        }
    }

    /// Parses YAML text into its node tree (with line marks); syntax errors are located.
    public static func compose(yaml: String, file: String) throws(ConfigError) -> Node {
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigError([ConfigProblem(file: file, line: 1, field: "", message: "the file is empty")])
            }
            return node
        } catch let e as ConfigError {
            throw e
        } catch let e as YamlError {
            throw ConfigError([syntaxProblem(e, file: file)])
        } catch {
            throw ConfigError([ConfigProblem(file: file, field: "", message: "\(error)")])
        }
    }

    /// Reads a file and decodes it.
    public static func load<T: Decodable>(_: T.Type, path: String) throws(ConfigError) -> (T, String) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError([ConfigProblem(file: path, field: "", message: "cannot read the file")])
        }
        return (try decode(T.self, yaml: text, file: path), text)
    }

    /// The node at a coding path, for locating problems found after decoding.
    public static func node(at path: [String], in root: Node) -> Node? {
        var node: Node? = root
        for key in path {
            guard let n = node else { return nil }
            if let i = Int(key), let seq = n.sequence {
                node = i < seq.count ? seq[i] : nil
            } else {
                node = n.mapping?[key]
            }
        }
        return node
    }

    /// A problem at `path`, located in `root` (falling back to the nearest located parent).
    public static func problem(file: String, root: Node, path: [CodingKey], message: String) -> ConfigProblem {
        let keys = path.map { $0.intValue.map(String.init) ?? $0.stringValue }
        var mark: Mark?
        var prefix = keys
        while mark == nil {
            mark = node(at: prefix, in: root)?.mark
            if prefix.isEmpty { break }
            prefix.removeLast()
        }
        return ConfigProblem(file: file, line: mark?.line, column: mark?.column, field: fieldPath(keys), message: message)
    }

    public static func fieldPath(_ keys: [String]) -> String {
        var s = ""
        for k in keys {
            if Int(k) != nil { s += "[\(k)]" } else { s += s.isEmpty ? k : ".\(k)" }
        }
        return s
    }

    static func found(_ root: Node, _ path: [CodingKey]) -> String {
        guard let n = node(at: path.map { $0.intValue.map(String.init) ?? $0.stringValue }, in: root) else { return "" }
        switch n {
        case let .scalar(s): return ", found '\(s.string)'"
        case .mapping: return ", found a mapping"
        case .sequence: return ", found a list"
        case .alias: return ""
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type, is Int64.Type, is UInt32.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "text"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") || name == "Mapping" { return "a mapping" }
            return "a mapping (\(name))"
        }
    }

    static func cleaned(_ s: String, found: String) -> String {
        // Yams and Foundation phrase enum mismatches as "Cannot initialize X from invalid String value y".
        if let r = s.range(of: "from invalid String value ") { return "invalid value '\(s[r.upperBound...])'" }
        return s + found
    }

    static func syntaxProblem(_ e: YamlError, file: String) -> ConfigProblem {
        switch e {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _):
            let what = [context?.text, problem].compactMap { $0 }.joined(separator: ": ")
            return ConfigProblem(file: file, line: mark.line, column: mark.column, field: "", message: "YAML syntax: \(what)")
        default:
            return ConfigProblem(file: file, field: "", message: "YAML: \(e)")
        }
    }
}

/// Training configs: decoded, then validated by the training engine.
extension YAMLConfig {
    public static func loadTrainConfig(_ path: String) throws(ConfigError) -> TrainConfig {
        let (cfg, _) = try load(TrainConfig.self, path: path)
        do {
            try cfg.validate()
        } catch {
            throw ConfigError([ConfigProblem(file: path, field: "", message: error.description)])
        }
        return cfg
    }
}
