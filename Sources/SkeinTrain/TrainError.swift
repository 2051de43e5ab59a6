/// Errors of the training engine. Each says what and where (file, record/line, column).
public enum TrainError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidModel(String)
    case invalidConfig(String)
    /// A data file could not be read or parsed.
    case data(DataError)
    /// A checkpoint is damaged, from another version, or for another model.
    case checkpoint(path: String, reason: String)
    case io(path: String, reason: String)
    /// Training went numerically wrong at a step (e.g. gradients the exact reduction cannot hold).
    case diverged(step: Int, reason: String)

    public var description: String {
        switch self {
        case let .invalidModel(m): "invalid model: \(m)"
        case let .invalidConfig(m): "invalid training config: \(m)"
        case let .data(e): e.description
        case let .checkpoint(path, reason): "checkpoint \(path): \(reason)"
        case let .io(path, reason): "\(path): \(reason)"
        case let .diverged(step, reason): "step \(step): \(reason)"
        }
    }
}

/// Where a data file went wrong: the file, the record (IDX) or line (CSV), and the column.
public struct DataError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based CSV line, or 0-based IDX record index.
    public var line: Int?
    public var record: Int?
    public var column: String?
    public var reason: String

    public init(file: String, line: Int? = nil, record: Int? = nil, column: String? = nil, reason: String) {
        self.file = file; self.line = line; self.record = record; self.column = column; self.reason = reason
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let record { s += ": record \(record)" }
        if let column { s += ": column \(column)" }
        return s + ": " + reason
    }
}
