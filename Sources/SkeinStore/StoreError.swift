/// Errors of the run store, with what and where.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file is not a SQLite database, or is damaged.
    case corrupt(path: String, detail: String)
    /// The database was written by a newer Skein (it has migrations this build does not know).
    case newerSchema(path: String, unknownMigrations: [String])
    /// A sweep name is taken, or a trial number exists.
    case conflict(String)
    case notFound(String)
    /// An attempt to change a finished trial.
    case immutable(trialID: Int64, status: TrialStatus)
    /// Any other database error, with the SQL that failed.
    case database(String)

    public var description: String {
        switch self {
        case let .corrupt(path, detail): "run store \(path) is damaged or not a Skein database: \(detail)"
        case let .newerSchema(path, unknown):
            "run store \(path) was written by a newer Skein (unknown migrations: \(unknown.joined(separator: ", "))); upgrade skein to read it"
        case let .conflict(what): "conflict: \(what)"
        case let .notFound(what): "not found: \(what)"
        case let .immutable(id, status): "trial \(id) is \(status.rawValue); finished trials cannot change"
        case let .database(detail): "run store: \(detail)"
        }
    }
}
