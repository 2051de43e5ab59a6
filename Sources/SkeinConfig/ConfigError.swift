/// One problem in a config file, located as precisely as the YAML allows.
public struct ConfigProblem: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based line and column of the offending node, when known.
    public var line: Int?
    public var column: Int?
    /// Dotted field path, e.g. `search.parameters.lr.low`.
    public var field: String
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, field: String, message: String) {
        self.file = file; self.line = line; self.column = column; self.field = field; self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let column { s += ":\(column)" }
        return "\(s): \(field.isEmpty ? "" : field + ": ")\(message)"
    }
}

/// Every problem found in a config file (validation reports all of them, not just the first).
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var problems: [ConfigProblem]
    public init(_ problems: [ConfigProblem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
