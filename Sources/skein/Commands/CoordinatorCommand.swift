import ArgumentParser
import Foundation
import Logging
import SkeinCoordinator
import SkeinStore
import SkeinTransport

/// `skein coordinator`: the long-running coordinator process.
struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: accepts workers, schedules sweeps, keeps the run store.",
        discussion: """
        Defaults put everything under the run directory (./runs or $SKEIN_RUN_DIR): it listens on
        ipc://<run dir>/coordinator.ipc, keeps the store in <run dir>/skein.sqlite, and, when no
        --token-file is given, uses <run dir>/token, creating a random one (mode 0600) if absent.
        Workers on other hosts need --listen tcp://0.0.0.0:PORT and a copy of the token file.
        On start it resumes every unfinished sweep in the store. SIGTERM stops handing out work
        and exits; the store already holds everything.
        """)

    @Option(help: "Address to listen on: ipc://PATH, tcp://HOST:PORT or tls+tcp://HOST:PORT.")
    var listen: String?
    @Option(help: "Run store file.")
    var store: String?
    @Option(help: "Join token file (created if missing).")
    var tokenFile: String?
    @Option(help: "Run directory for the defaults.")
    var runDir: String?
    @Option(help: "Heartbeat interval in seconds; a worker silent for 4 intervals is declared dead.")
    var heartbeat: Double = 0.5
    @Option(help: "TLS certificate (PEM) for tls+tcp://.") var tlsCert: String?
    @Option(help: "TLS private key (PEM).") var tlsKey: String?
    @Option(help: "CA (PEM) that client certificates must chain to; omit to not require client certificates.") var tlsCa: String?
    @Option(help: ArgumentHelp("TCP ports (LOW-HIGH) the ranks of a data-parallel trial spanning hosts listen on; open them between workers.",
                               valueName: "low-high"))
    var groupPorts: String = "\(GroupAddresses.defaultPorts.lowerBound)-\(GroupAddresses.defaultPorts.upperBound)"
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String?

    func validate() throws {
        guard GroupAddresses.parsePorts(groupPorts) != nil else {
            throw ValidationError("--group-ports must be LOW-HIGH with 1024 <= LOW <= HIGH <= 65535 and at least 64 ports (got '\(groupPorts)')")
        }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let log = Logger(label: "skein.coordinator")
        let dir = runDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Defaults.runDirectory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let storePath = store ?? Defaults.store(runDirectory: dir)
        let token = try readOrCreateToken(tokenFile ?? Defaults.tokenFile(runDirectory: dir))
        let address = listen ?? Defaults.address(runDirectory: dir)
        let runStore = try cli { () throws(StoreError) in try SQLiteRunStore(path: storePath) }
        let coordinator = Coordinator(store: runStore, token: token,
                                      settings: .init(registry: .init(heartbeatInterval: heartbeat),
                                                      groupPorts: GroupAddresses.parsePorts(groupPorts)!), logger: log)
        try await coordinator.recover()
        let tls = tlsCert.map { TLSConfiguration(certificatePath: $0, keyPath: tlsKey, certificateAuthorityPath: tlsCa, requirePeerCertificate: tlsCa != nil) }
        let server = CoordinatorServer(coordinator: coordinator, address: address, tls: tls, logger: log)
        let task = Task {
            try await server.run { bound in
                log.info("coordinator listening on \(bound), store \(storePath)")
                print("listening \(bound)")
                fflush(nil)
            }
        }
        let signals = SignalHandler { sig in
            log.info("signal \(sig): no new work; exiting (the store holds all state)")
            Task { await coordinator.drain(); task.cancel() }
        }
        do {
            defer { withExtendedLifetime(signals) {} }
            try await task.value
        } catch is CancellationError {
        } catch let e as TransportError where e.code == .cancelled || e.code == .closed {
        } catch let e as TransportError {
            throw CLIError(e.description)
        }
    }
}
