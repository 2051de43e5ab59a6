/// A hyperparameter value: what a searcher suggests and a trial receives (as JSON).
public enum ParameterValue: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case list([ParameterValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .list(try c.decode([ParameterValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .int(v): try c.encode(v)
        case let .double(v): try c.encode(v)
        case let .string(v): try c.encode(v)
        case let .bool(v): try c.encode(v)
        case let .list(v): try c.encode(v)
        }
    }

    /// The value as a number, if it is one.
    public var number: Double? {
        switch self {
        case let .int(v): Double(v)
        case let .double(v): v
        default: nil
        }
    }

    /// Text for command-line substitution (`{lr}` → `0.001`).
    public var description: String {
        switch self {
        case let .int(v): String(v)
        case let .double(v): v.description
        case let .string(v): v
        case let .bool(v): v ? "true" : "false"
        case let .list(v): "[" + v.map(\.description).joined(separator: ",") + "]"
        }
    }
}

/// One trial's parameters, in the order the search space declares them.
public struct ParameterSet: Equatable, Hashable, Sendable {
    public var names: [String]
    public var values: [String: ParameterValue]
    public init(names: [String], values: [String: ParameterValue]) { self.names = names; self.values = values }
    public subscript(name: String) -> ParameterValue? { values[name] }

    /// A JSON object with keys in declaration order (stable text for the store and the wire).
    public var json: String {
        "{" + names.map { "\(jsonString($0)):\(jsonValue(values[$0]!))" }.joined(separator: ",") + "}"
    }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += "\\u00" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

func jsonValue(_ v: ParameterValue) -> String {
    switch v {
    case let .int(i): return String(i)
    case let .double(d): return d.isFinite ? "\(d)" : "null"
    case let .string(s): return jsonString(s)
    case let .bool(b): return b ? "true" : "false"
    case let .list(l): return "[" + l.map(jsonValue).joined(separator: ",") + "]"
    }
}


