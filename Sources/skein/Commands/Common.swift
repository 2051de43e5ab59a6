import ArgumentParser
import Foundation
import Logging
import SkeinTransport

/// Defaults that make local use painless: everything lives under a run directory
/// (`runs/`, or `$SKEIN_RUN_DIR`): the store `skein.sqlite`, the join token `token`, and the
/// coordinator's address `ipc://<run dir>/coordinator.ipc`.
enum Defaults {
    static var runDirectory: String {
        let dir = ProcessInfo.processInfo.environment["SKEIN_RUN_DIR"] ?? "runs"
        return URL(fileURLWithPath: dir).standardizedFileURL.path
    }
    static func address(runDirectory: String) -> String { "ipc://\(runDirectory)/coordinator.ipc" }
    static func store(runDirectory: String) -> String { "\(runDirectory)/skein.sqlite" }
    static func tokenFile(runDirectory: String) -> String { "\(runDirectory)/token" }
}

/// Where to reach a cluster: a coordinator over the wire, or a run store file.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Ask a running coordinator at this address (e.g. tcp://host:7070). Default: read the store.")
    var coordinator: String?

    @Option(help: "Run store file. Default: <run dir>/skein.sqlite.")
    var store: String?

    @Option(help: "Join token file for --coordinator. Default: <run dir>/token.")
    var tokenFile: String?

    @Option(help: "Run directory. Default: $SKEIN_RUN_DIR or ./runs.")
    var runDir: String?

    var runDirectory: String { runDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Defaults.runDirectory }
    var storePath: String { store ?? Defaults.store(runDirectory: runDirectory) }

    /// Connects and authenticates as a client.
    func connect() async throws -> (ControlClient, String) {
        guard let address = coordinator else { throw CLIError("no --coordinator address given") }
        let token = try readToken(tokenFile ?? Defaults.tokenFile(runDirectory: runDirectory))
        let client = try cli { () throws(TransportError) in try ControlClient(address: address) }
        do {
            let w = try await client.authenticate(token: token, role: .client, name: "cli", host: hostName(), slots: 0, timeout: .seconds(5))
            return (client, w.workerID)
        } catch {
            throw CLIError("\(address): \(error)")
        }
    }
}

func readToken(_ path: String) throws -> [UInt8] {
    guard let d = FileManager.default.contents(atPath: path) else {
        throw CLIError("\(path): cannot read the join token (pass --token-file, or start the coordinator first so it writes one)")
    }
    let text = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !text.isEmpty else { throw CLIError("\(path): the join token file is empty") }
    return Array(text.utf8)
}

/// Reads the token at `path`, or creates one (random, mode 0600) if the file does not exist.
func readOrCreateToken(_ path: String) throws -> [UInt8] {
    if FileManager.default.fileExists(atPath: path) { return try readToken(path) }
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let token = Authentication.nonce().map { String(format: "%02x", $0) }.joined()
    guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
        throw CLIError("\(path): cannot write the join token")
    }
    return Array(token.utf8)
}

func hostName() -> String { ProcessInfo.processInfo.hostName }

/// Log level from `--log-level`, then `$SKEIN_LOG_LEVEL`, else `fallback`.
func bootstrapLogging(_ level: String?, fallback: Logger.Level = .info) {
    let raw = level ?? ProcessInfo.processInfo.environment["SKEIN_LOG_LEVEL"]
    let l = raw.flatMap(Logger.Level.init(rawValue:)) ?? fallback
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = l
        return h
    }
}

/// Runs `body` when the process gets SIGTERM or SIGINT (the handlers stay installed).
final class SignalHandler {
    private let sources: [DispatchSourceSignal]
    init(_ body: @escaping @Sendable (Int32) -> Void) {
        sources = [SIGTERM, SIGINT].map { sig in
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { body(sig) }
            s.resume()
            return s
        }
    }
}
