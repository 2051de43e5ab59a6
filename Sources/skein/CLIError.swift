import ArgumentParser
import SkeinConfig
import SkeinTrain

/// An error for a person: one clear line per problem, non-zero exit, no usage text.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

/// Runs `body`, turning typed library errors into a `CLIError`.
func cli<T, E: Error & CustomStringConvertible>(_ body: () throws(E) -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw CLIError(error.description)
    }
}
