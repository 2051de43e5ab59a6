import ArgumentParser
import Foundation
import SkeinReport
import SkeinStore

/// The run store a command reads: `--store PATH`, or `runs/skein.sqlite` by default.
struct StoreOption: ParsableArguments {
    @Option(help: "Run store (SQLite file).")
    var store: String = "runs/skein.sqlite"

    func open() throws -> SQLiteRunStore {
        guard FileManager.default.fileExists(atPath: store) else { throw CLIError("\(store): no run store here (use --store PATH)") }
        return try cli { () throws(StoreError) in try SQLiteRunStore(path: store) }
    }

    func sweep(_ name: String, in s: SQLiteRunStore) throws -> SweepRecord {
        guard let sweep = try cli({ () throws(StoreError) in try s.sweep(named: name) }) else {
            let names = (try? s.sweeps().map(\.name)) ?? []
            throw CLIError("no sweep named '\(name)' in \(store)" + (names.isEmpty ? "" : " (sweeps: \(names.joined(separator: ", ")))"))
        }
        return sweep
    }
}

/// `skein export SWEEP --format json|csv|md|table`: every trial with its parameters and result.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export every trial of a sweep from the run store.")

    @Argument(help: "Sweep name.")
    var sweep: String

    @Option(help: "Output format: \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: ReportFormatArgument = .init(.csv)

    @OptionGroup var storeOption: StoreOption

    func run() throws {
        let store = try storeOption.open()
        let s = try storeOption.sweep(sweep, in: store)
        let trials = try cli { () throws(StoreError) in try store.trials(sweepID: s.id) }
        print(Report.export(trials, sweep: s, format: format.value), terminator: "")
    }
}

struct ReportFormatArgument: ExpressibleByArgument {
    let value: ReportFormat
    init(_ v: ReportFormat) { value = v }
    init?(argument: String) {
        guard let v = ReportFormat(rawValue: argument) else { return nil }
        value = v
    }
    static var allValueStrings: [String] { ReportFormat.allCases.map(\.rawValue) }
    var defaultValueDescription: String { value.rawValue }
}
