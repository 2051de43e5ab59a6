import ArgumentParser
import Foundation
import Logging
import SkeinConfig
import SkeinCoordinator
import SkeinReport
import SkeinStore
import SkeinTransport
import SkeinWire

/// `skein sweep …`
struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep", abstract: "Launch, cancel, resume or extend sweeps.",
        subcommands: [Launch.self, Cancel.self, Resume.self, Extend.self])

    struct Launch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a sweep to a coordinator, or run it locally with --local N.",
            discussion: """
            With --local N, starts an embedded coordinator and N worker processes on this machine,
            shows progress, prints the leaderboard and exits 0 when the sweep is done. The run
            directory (default: runs/<sweep>-<time>) keeps the store, token and worker logs:
              skein leaderboard NAME --store <run dir>/skein.sqlite
            Without --local, submits to the coordinator at --coordinator (default: the run
            directory's ipc address) and returns.
            """)

        @Argument(help: "Sweep config (YAML), e.g. configs/fashion-mlp-sweep.yaml.")
        var config: String
        @Option(help: "Run locally with this many worker processes.")
        var local: Int?
        @Option(help: "Slots per local worker.")
        var slots: Int = 1
        @Option(help: "Coordinator to submit to (without --local).")
        var coordinator: String?
        @Option(help: "Join token file (without --local). Default: <run dir>/token.")
        var tokenFile: String?
        @Option(help: "Run directory.")
        var runDir: String?
        @Option(help: "Rows of the final leaderboard.")
        var top: Int = 10
        @Option(help: "Log level of the embedded coordinator and workers.")
        var logLevel: String?

        func run() async throws {
            let (cfg, text) = try cli { () throws(ConfigError) in try SweepConfig.load(path: config) }
            if let n = local {
                guard n >= 1 else { throw CLIError("--local needs at least 1 worker") }
                try await runLocal(cfg, text, workers: n)
            } else {
                var opts = try ClusterOptions.parse([])
                opts.coordinator = coordinator ?? Defaults.address(runDirectory: runDir ?? Defaults.runDirectory)
                opts.tokenFile = tokenFile
                opts.runDir = runDir
                let (client, session) = try await opts.connect()
                let reply = try await client.call(.submitSweep(SubmitSweep(session: session, configYAML: text, sourcePath: config)))
                guard case let .queryResult(r) = reply else { throw CLIError("unexpected reply \(reply.kind)") }
                if let obj = try? JSONSerialization.jsonObject(with: Data(r.json.utf8)) as? [String: Any], let errors = obj["error"] as? [String] {
                    throw CLIError(errors.joined(separator: "\n"))
                }
                print("submitted: \(r.json)")
            }
        }

        func runLocal(_ cfg: SweepConfig, _ text: String, workers n: Int) async throws {
            bootstrapLogging(logLevel, fallback: .warning)
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
            let dir = runDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "\(Defaults.runDirectory)/\(cfg.name)-\(stamp)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let tokenPath = Defaults.tokenFile(runDirectory: dir)
            let token = try readOrCreateToken(tokenPath)
            let storePath = Defaults.store(runDirectory: dir)
            let store = try cli { () throws(StoreError) in try SQLiteRunStore(path: storePath) }
            if try store.sweep(named: cfg.name) != nil {
                throw CLIError("\(storePath) already has a sweep named '\(cfg.name)': use another --run-dir")
            }
            let log = Logger(label: "skein.coordinator")
            let coordinator = Coordinator(store: store, token: token, logger: log)
            try await coordinator.recover()
            let address = Defaults.address(runDirectory: dir)
            let server = CoordinatorServer(coordinator: coordinator, address: address, logger: log)
            let serverTask = Task { try await server.run() }
            let started = Date()
            _ = try await coordinator.submit(cfg, yaml: text)

            print("sweep \(cfg.name): \(cfg.totalTrials) trials (\(cfg.method.rawValue) search), \(n) local workers, run directory \(dir)")
            var workers: [Process] = []
            let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            for i in 0..<n {
                let p = Process()
                p.executableURL = exe
                p.arguments = ["worker", "--join", address, "--token-file", tokenPath, "--slots", String(slots), "--name", "local-\(i)",
                               "--run-dir", dir, "--log-level", logLevel ?? "info"]
                let logPath = "\(dir)/worker-\(i).log"
                _ = FileManager.default.createFile(atPath: logPath, contents: nil)
                p.standardError = FileHandle(forWritingAtPath: logPath)
                p.standardOutput = FileHandle.nullDevice
                try p.run()
                workers.append(p)
            }
            let pids = workers.map(\.processIdentifier)
            let cleanup = { @Sendable in for pid in pids { kill(pid, SIGTERM) } }
            let signals = SignalHandler { _ in cleanup(); serverTask.cancel(); Foundation.exit(130) }
            let progress = ProgressLine(enabled: isatty(1) != 0)
            var lastLine = ""
            let sweepID = try store.sweep(named: cfg.name)!.id
            while true {
                let s = try store.summary(sweepID: sweepID)
                let line = "trials \(s.counts[.completed] ?? 0)/\(cfg.totalTrials) done, \(s.counts[.running] ?? 0) running, "
                    + "\(s.counts[.failed] ?? 0) failed" + (s.best.map { "; best \(cfg.objective.metric) \(Report.number($0.objective ?? .nan)) (trial \($0.number))" } ?? "")
                if line != lastLine {
                    if progress.enabled { progress.show(line) } else { print(line) }
                    lastLine = line
                }
                if s.sweep.status != .running { break }
                if workers.allSatisfy({ !$0.isRunning }) {
                    progress.clear()
                    throw CLIError("all local workers exited; see \(dir)/worker-*.log")
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            progress.clear()
            cleanup()
            for w in workers { w.waitUntilExit() }
            serverTask.cancel()
            _ = try? await serverTask.value
            withExtendedLifetime(signals) {}
            let s = try store.summary(sweepID: sweepID)
            print(String(format: "sweep %@ %@ in %.1f s: %d completed, %d failed", cfg.name, s.sweep.status.rawValue,
                         Date().timeIntervalSince(started), s.counts[.completed] ?? 0, s.counts[.failed] ?? 0))
            let board = try store.leaderboard(sweepID: sweepID, top: top)
            print("")
            print(Report.leaderboard(board, sweep: s.sweep, format: .table), terminator: "")
            print("\nstore: \(storePath)\n  skein leaderboard \(cfg.name) --store \(storePath) --format md")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Schedule a sweep again (asks the coordinator): unfinished trials run, and with --retry-failed failed ones too.")
        @Argument(help: "Sweep name.") var sweep: String
        @Flag(help: "Queue failed trials again.") var retryFailed = false
        @OptionGroup var cluster: ClusterOptions
        func run() async throws {
            print(try await command(cluster, retryFailed ? "resume-retry-failed" : "resume", sweep))
        }
    }

    struct Extend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raise a sweep's trial budget; the new trials start at once.")
        @Argument(help: "Sweep name.") var sweep: String
        @Option(help: "The new total number of trials.") var maxTrials: Int
        @OptionGroup var cluster: ClusterOptions
        func run() async throws {
            print(try await command(cluster, "extend", "\(sweep) \(maxTrials)"))
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a running sweep (asks the coordinator).")
        @Argument(help: "Sweep name.") var sweep: String
        @OptionGroup var cluster: ClusterOptions

        func run() async throws {
            var opts = cluster
            if opts.coordinator == nil { opts.coordinator = Defaults.address(runDirectory: opts.runDirectory) }
            let (client, session) = try await opts.connect()
            let reply = try await client.call(.query(Query(session: session, kind: "cancel", argument: sweep)))
            guard case let .queryResult(r) = reply else { throw CLIError("unexpected reply") }
            print(r.json.contains("true") ? "sweep \(sweep) cancelled" : "sweep \(sweep) is not running")
        }
    }
}
