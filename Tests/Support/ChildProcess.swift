import Foundation
import Synchronization

/// A real child process for multi-process tests: started from a built executable of this
/// package, its stdout read line by line, killed (SIGKILL by default) when the test is done.
/// stderr goes to a log file that tests print when they fail.
public final class ChildProcess: Sendable {
    public let executable: String
    public let arguments: [String]
    public let logPath: String
    private let process: Process
    private let lines = LineCollector()
    private let stdoutPipe = Pipe()

    /// Starts `executable` (a product name such as `skein-testpeer`, found next to the test binary),
    /// through `launcher` if given (a command that ends by running the product, e.g.
    /// `ip netns exec NAME`: it execs the product, so the child is the product itself).
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws {
        self.executable = executable
        self.arguments = arguments
        let p = Process()
        if let first = launcher.first {
            p.executableURL = URL(fileURLWithPath: first)
            p.arguments = Array(launcher.dropFirst()) + [BuiltProducts.path(of: executable)] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: BuiltProducts.path(of: executable))
            p.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardOutput = stdoutPipe
        let log = TemporaryDirectory.unique(prefix: "log-\(executable)") + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let logHandle = FileHandle(forWritingAtPath: log)
        p.standardError = logHandle
        logPath = log
        process = p
        // The child has its own copy of the log: this process keeps none (a suite starts
        // thousands of children, and Foundation's Process.run crashed once reading
        // /proc/self/fd with 1,360 descriptors open).
        defer { try? logHandle?.close() }
        try p.run()
        // stdout is read on a thread of its own to its end, then closed.
        let collector = lines, reader = stdoutPipe.fileHandleForReading
        Thread.detachNewThread {
            while case let chunk = reader.availableData, !chunk.isEmpty { collector.append(chunk) }
            try? reader.close()
            collector.end()
        }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Lines printed on stdout so far.
    public var output: [String] { lines.lines }

    /// Waits until a stdout line starts with `prefix` and returns it.
    public func waitForLine(startingWith prefix: String, timeout: Duration = .seconds(20)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = output.first(where: { $0.hasPrefix(prefix) }) { return line }
            if !process.isRunning, output.first(where: { $0.hasPrefix(prefix) }) == nil {
                throw ChildProcessError.exited(executable, status: process.terminationStatus, log: log)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ChildProcessError.timedOut(executable, waitingFor: prefix, log: log)
    }

    /// Sends a signal (SIGKILL by default) and waits for the process to end.
    public func kill(_ signal: Int32 = SIGKILL) {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, signal)
        }
    }

    /// Waits for the process to exit and returns its status.
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { throw ChildProcessError.timedOut(executable, waitingFor: "exit", log: log) }
            try await Task.sleep(for: .milliseconds(10))
        }
        // The reader thread may not have taken the last of stdout yet: wait for its end (a
        // grandchild that kept the pipe open would hold it forever, hence the bound).
        let drained = ContinuousClock.now + .seconds(5)
        while !lines.ended, ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(5)) }
        return process.terminationStatus
    }

    /// What the process wrote on stderr.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        // Also when it has exited: Foundation's Process holds itself until this is called.
        process.waitUntilExit()
        // Read (and shown in failures) while the process object lives; nobody can after.
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case exited(String, status: Int32, log: String)
    case timedOut(String, waitingFor: String, log: String)
    public var description: String {
        switch self {
        case let .exited(name, status, log): "\(name) exited with status \(status); stderr:\n\(log)"
        case let .timedOut(name, what, log): "\(name): timed out waiting for \(what); stderr:\n\(log)"
        }
    }
}

/// Locates executables built alongside the test bundle (`.build/<config>/`).
public enum BuiltProducts {
    public static var directory: String {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        // An .xctest bundle directory on some platforms: step out of it.
        while url.path.contains(".xctest") { url = url.deletingLastPathComponent() }
        return url.path
    }
    public static func path(of product: String) -> String { directory + "/" + product }
}

/// Unique paths and addresses, so tests can run in parallel.
public enum TemporaryDirectory {
    public static func unique(prefix: String) -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        return "\(base)/skein-\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))"
    }
    /// Creates and returns a fresh directory.
    public static func make(prefix: String) throws -> String {
        let path = unique(prefix: prefix)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
    /// A unique `ipc://` address.
    public static func ipcAddress(_ name: String = "t") -> String { "ipc://" + unique(prefix: name) + ".ipc" }
}

/// Splits a byte stream into lines; fed from FileHandle's reader thread.
final class LineCollector: Sendable {
    private let state = Mutex<(partial: [UInt8], lines: [String], ended: Bool)>(([], [], false))
    func append(_ chunk: Data) {
        state.withLock { s in
            s.partial.append(contentsOf: chunk)
            while let nl = s.partial.firstIndex(of: UInt8(ascii: "\n")) {
                s.lines.append(String(decoding: s.partial[..<nl], as: UTF8.self))
                s.partial.removeSubrange(...nl)
            }
        }
    }
    /// At the end of the stream: a last line without a newline counts too.
    func end() {
        state.withLock { s in
            if !s.partial.isEmpty { s.lines.append(String(decoding: s.partial, as: UTF8.self)); s.partial = [] }
            s.ended = true
        }
    }
    var lines: [String] { state.withLock { $0.lines } }
    var ended: Bool { state.withLock { $0.ended } }
}
