import ArgumentParser
import Foundation
import SkeinReport
import SkeinStore

/// `skein export SWEEP --format json|csv|md|table`: every trial with its parameters and result.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export every trial of a sweep from the run store.")

    @Argument(help: "Sweep name.")
    var sweep: String

    @Option(help: "Output format: \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: ReportFormatArgument = .init(.csv)

    @OptionGroup var cluster: ClusterOptions

    func run() throws {
        let store = try openStore(cluster)
        let s = try sweepNamed(sweep, store)
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
