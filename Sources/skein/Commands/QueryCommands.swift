import ArgumentParser
import Foundation
import SkeinReport
import SkeinStore
import SkeinTransport
import SkeinWire

/// Asks the coordinator, returning the JSON answer.
func ask(_ cluster: ClusterOptions, _ kind: String, _ argument: String = "") async throws -> Any {
    let (client, session) = try await cluster.connect()
    defer { client.close() }
    let reply: ControlMessage
    do {
        reply = try await client.call(.query(Query(session: session, kind: kind, argument: argument)))
    } catch let ControlError.refused(_, detail) {
        throw CLIError(detail)
    } catch {
        throw CLIError("\(cluster.coordinator ?? ""): \(error)")
    }
    guard case let .queryResult(r) = reply else { throw CLIError("unexpected reply \(reply.kind)") }
    return try JSONSerialization.jsonObject(with: Data(r.json.utf8), options: [.fragmentsAllowed])
}

func openStore(_ cluster: ClusterOptions) throws -> SQLiteRunStore {
    let path = cluster.storePath
    guard FileManager.default.fileExists(atPath: path) else { throw CLIError("\(path): no run store here (use --store PATH or --coordinator ADDR)") }
    return try cli { () throws(StoreError) in try SQLiteRunStore(path: path) }
}

func sweepNamed(_ name: String, _ store: SQLiteRunStore) throws -> SweepRecord {
    guard let s = try cli({ () throws(StoreError) in try store.sweep(named: name) }) else {
        let names = (try? store.sweeps().map(\.name)) ?? []
        throw CLIError("no sweep named '\(name)' in \(store.path)" + (names.isEmpty ? "" : " (sweeps: \(names.joined(separator: ", ")))"))
    }
    return s
}

/// `skein status [SWEEP] [--watch]`
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show sweeps and their progress (from the store, or a coordinator).")
    @Argument(help: "Only this sweep.") var sweep: String?
    @Flag(help: "Refresh every second until interrupted.") var watch = false
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        repeat {
            let rows: [[String]]
            if cluster.coordinator != nil {
                let list = (try await ask(cluster, "status", sweep ?? "")) as? [[String: Any]] ?? []
                rows = list.map { o in
                    [o["name"] as? String ?? "", o["status"] as? String ?? "", "\(o["completed"] ?? 0)", "\(o["running"] ?? 0)",
                     "\(o["queued"] ?? 0)", "\(o["failed"] ?? 0)", "\(o["total"] ?? 0)",
                     ((o["best"] as? [String: Any])?["objective"] as? Double).map(Report.number) ?? ""]
                }
            } else {
                let store = try openStore(cluster)
                let sweeps = try cli { () throws(StoreError) in try store.sweeps() }.filter { sweep == nil || $0.name == sweep }
                if let sweep, sweeps.isEmpty { _ = try sweepNamed(sweep, store) }
                rows = try sweeps.map { s in
                    let sum = try cli { () throws(StoreError) in try store.summary(sweepID: s.id) }
                    return [s.name, s.status.rawValue, "\(sum.counts[.completed] ?? 0)", "\(sum.counts[.running] ?? 0)", "\(sum.counts[.queued] ?? 0)",
                            "\(sum.counts[.failed] ?? 0)", "\(sum.total)", sum.best?.objective.map(Report.number) ?? ""]
                }
            }
            // Data-parallel groups waiting for a slow rank, named.
            var lags: [String] = []
            if cluster.coordinator != nil {
                let list = (try await ask(cluster, "status", sweep ?? "")) as? [[String: Any]] ?? []
                lags = list.flatMap { $0["stragglers"] as? [String] ?? [] } + list.compactMap { $0["forming"] as? String }
            } else {
                let store = try openStore(cluster)
                for s in try cli({ () throws(StoreError) in try store.sweeps() }) where (sweep == nil || s.name == sweep) && s.status == .running {
                    lags += try cli { () throws(StoreError) in try Stragglers.lines(store: store, sweepID: s.id) }.map { "\(s.name) \($0)" }
                }
            }
            if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            print(Report.render(header: ["sweep", "status", "completed", "running", "queued", "failed", "trials", "best"], rows: rows, format: .table),
                  terminator: "")
            for line in lags { print(line) }
            if watch { try await Task.sleep(for: .seconds(1)) }
        } while watch
    }
}

/// `skein workers`
struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List workers (from the store, or live from a coordinator).")
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let rows: [[String]]
        if cluster.coordinator != nil {
            let list = (try await ask(cluster, "workers")) as? [[String: Any]] ?? []
            rows = list.map { o in
                [o["id"] as? String ?? "", o["host"] as? String ?? "", "\(o["slots"] ?? 0)", "\(o["running"] ?? 0)", o["state"] as? String ?? "",
                 String(format: "%.1fs ago", o["last_seen_seconds_ago"] as? Double ?? 0)]
            }
        } else {
            let store = try openStore(cluster)
            let now = Date().timeIntervalSince1970
            rows = try cli { () throws(StoreError) in try store.workers() }.map {
                [$0.id, $0.host, "\($0.slots)", "", $0.state.rawValue, String(format: "%.1fs ago", now - $0.lastSeen)]
            }
        }
        print(Report.render(header: ["worker", "host", "slots", "running", "state", "last seen"], rows: rows, format: .table), terminator: "")
    }
}

/// `skein leaderboard SWEEP`
struct Leaderboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rank a sweep's completed trials by its objective.")
    @Argument(help: "Sweep name.") var sweep: String
    @Option(help: "Rows to show.") var top: Int = 10
    @Option(help: "Output format: table, md, csv, json.") var format: ReportFormatArgument = .init(.table)
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        if cluster.coordinator != nil {
            let list = (try await ask(cluster, "leaderboard", "\(sweep) \(top)")) as? [[String: Any]] ?? []
            let rows = list.map { o in
                ["\(o["rank"] ?? "")", "\(o["trial"] ?? "")", (o["objective"] as? Double).map(Report.number) ?? "", o["parameters"] as? String ?? ""]
            }
            print(Report.render(header: ["rank", "trial", "objective", "parameters"], rows: rows, format: format.value), terminator: "")
            return
        }
        let store = try openStore(cluster)
        let s = try sweepNamed(sweep, store)
        let board = try cli { () throws(StoreError) in try store.leaderboard(sweepID: s.id, top: top) }
        print(Report.leaderboard(board, sweep: s, format: format.value), terminator: "")
    }
}

/// Sends a command to the coordinator (default: the run directory's address) and returns its JSON answer as text.
func command(_ cluster: ClusterOptions, _ kind: String, _ argument: String) async throws -> String {
    var opts = cluster
    if opts.coordinator == nil { opts.coordinator = Defaults.address(runDirectory: opts.runDirectory) }
    let answer = try await ask(opts, kind, argument)
    let data = try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys, .fragmentsAllowed])
    return String(decoding: data, as: UTF8.self)
}

/// `skein trial retry SWEEP TRIAL`
struct TrialCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trial", abstract: "Act on one trial.", subcommands: [Retry.self])

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a failed trial again (asks the coordinator).")
        @Argument(help: "Sweep name.") var sweep: String
        @Argument(help: "Trial number.") var trial: Int
        @OptionGroup var cluster: ClusterOptions
        func run() async throws {
            print(try await command(cluster, "retry", "\(sweep) \(trial)"))
        }
    }
}
