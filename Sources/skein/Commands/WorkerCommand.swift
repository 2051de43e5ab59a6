import ArgumentParser
import Foundation
import Logging
import SkeinTransport
import SkeinWorker

/// `skein worker`: joins a coordinator and runs trials.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Join a coordinator and run trials; start as many as you like, whenever you like.",
        discussion: """
        The worker reconnects by itself if the coordinator restarts and reports the trials it is
        still running. SIGTERM drains it: it takes no new work, hands its running trials back,
        and exits. Each slot runs one trial; a built-in trial uses the OpenBLAS thread count its
        config names (trial.blas_threads, default 1), so results never depend on the worker.
        """)

    @Option(help: "Coordinator address. Default: ipc://<run dir>/coordinator.ipc.")
    var join: String?
    @Option(help: "Trials to run at once.")
    var slots: Int = 1
    @Option(help: "Join token file. Default: <run dir>/token.")
    var tokenFile: String?
    @Option(help: "Worker name (shown in `skein workers`). Default: host-pid.")
    var name: String?
    @Option(help: ArgumentHelp("Host name or IP address other workers reach this one at, for data-parallel trials spanning hosts. Default: $SKEIN_ADVERTISE_HOST, else this machine's host name.",
                               valueName: "host"))
    var advertiseHost: String?
    @Option(help: "Run directory for the defaults.")
    var runDir: String?
    @Option(help: "Directory for trial checkpoints and scratch files. Default: <run dir>/workers/<name>.")
    var workDir: String?
    @Option(help: "CA (PEM) to verify a tls+tcp:// coordinator.") var tlsCa: String?
    @Option(help: "Server name the coordinator's certificate must carry.") var tlsServerName: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String?

    func validate() throws {
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        if let h = advertised, !Self.isValidHost(h) {
            throw ValidationError("--advertise-host (or SKEIN_ADVERTISE_HOST) must be a host name or IP address, without scheme or port (got '\(h)')")
        }
    }

    /// `--advertise-host`, else `$SKEIN_ADVERTISE_HOST`, if either is given.
    var advertised: String? { advertiseHost ?? ProcessInfo.processInfo.environment["SKEIN_ADVERTISE_HOST"] }

    /// A host name, IPv4 address or IPv6 literal: what goes between `tcp://` and `:PORT`.
    static func isValidHost(_ h: String) -> Bool {
        !h.isEmpty && h.count <= 253 && h.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]_".contains($0)) }
            && !h.hasPrefix("-") && (h.contains(":") || !h.contains("["))
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let dir = runDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Defaults.runDirectory
        let workerName = name ?? "\(hostName())-\(getpid())"
        let token = try readToken(tokenFile ?? Defaults.tokenFile(runDirectory: dir))
        let tls = tlsCa.map { TLSConfiguration(certificateAuthorityPath: $0, serverName: tlsServerName) }
        let worker = try Worker(settings: .init(
            joinAddress: join ?? Defaults.address(runDirectory: dir), tls: tls, token: token, name: workerName,
            host: advertised ?? hostName(),
            slots: slots, workDirectory: workDir ?? "\(dir)/workers/\(workerName)"))
        let signals = SignalHandler { _ in worker.drain() }
        do {
            defer { withExtendedLifetime(signals) {} }
            try await worker.run()
        } catch let e as Worker.Failure {
            throw CLIError(e.description)
        }
    }
}
