import Foundation
import SkeinStore

/// Output formats of leaderboards and exports.
public enum ReportFormat: String, CaseIterable, Sendable {
    case table, md, csv, json
}

/// Renders trials of a sweep (leaderboards, exports) in the formats people paste elsewhere.
/// Pure: takes records, returns text.
public enum Report {
    /// Parameters of a trial, decoded from its JSON object text, as display strings.
    public static func parameters(_ trial: TrialRecord) -> [String: String] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(trial.parametersJSON.utf8)) as? [String: Any] else { return [:] }
        return obj.mapValues(display)
    }

    static func display(_ v: Any) -> String {
        switch v {
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" { return n.boolValue ? "true" : "false" } // JSON true/false
            let d = n.doubleValue
            if d == d.rounded(), abs(d) < 1e15, !"\(n)".contains(".") { return String(Int64(d)) }
            return number(d)
        case let s as String: return s
        default:
            if let data = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) {
                return String(decoding: data, as: UTF8.self)
            }
            return "\(v)"
        }
    }

    /// Numbers with up to 6 significant digits, as people read them.
    public static func number(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d != 0, abs(d) < 1e-3 || abs(d) >= 1e6 { return String(format: "%.4e", d) }
        var s = String(format: "%.6g", d)
        if s.contains("e") { s = String(format: "%.4e", d) }
        return s
    }

    /// Column names: fixed columns, then every parameter name seen, sorted.
    static func columns(_ trials: [TrialRecord], rank: Bool, objectiveName: String) -> (header: [String], paramNames: [String]) {
        let names = Set(trials.flatMap { parameters($0).keys }).sorted()
        var h = rank ? ["rank"] : []
        h += ["trial", objectiveName, "status", "attempt"]
        return (h + names, names)
    }

    static func rows(_ trials: [TrialRecord], ranks: [Int]?, paramNames: [String]) -> [[String]] {
        trials.enumerated().map { i, t in
            let p = parameters(t)
            var r = ranks.map { [String($0[i])] } ?? []
            r += [String(t.number), t.objective.map(number) ?? "", t.status.rawValue, String(t.attempt)]
            return r + paramNames.map { p[$0] ?? "" }
        }
    }

    /// A leaderboard of ranked entries.
    public static func leaderboard(_ entries: [LeaderboardEntry], sweep: SweepRecord, format: ReportFormat) -> String {
        let trials = entries.map(\.trial)
        let (header, names) = columns(trials, rank: true, objectiveName: sweep.objectiveMetric)
        let body = rows(trials, ranks: entries.map(\.rank), paramNames: names)
        switch format {
        case .json: return json(trials, ranks: entries.map(\.rank), sweep: sweep)
        default: return render(header: header, rows: body, format: format)
        }
    }

    /// Every trial of a sweep (for `skein export`).
    public static func export(_ trials: [TrialRecord], sweep: SweepRecord, format: ReportFormat) -> String {
        let (header, names) = columns(trials, rank: false, objectiveName: sweep.objectiveMetric)
        switch format {
        case .json: return json(trials, ranks: nil, sweep: sweep)
        default: return render(header: header, rows: rows(trials, ranks: nil, paramNames: names), format: format)
        }
    }

    public static func render(header: [String], rows: [[String]], format: ReportFormat) -> String {
        switch format {
        case .table:
            let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .trimmingCharacters(in: .whitespaces)
            }
            return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
                .joined(separator: "\n") + "\n"
        case .md:
            func line(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |" }
            return ([line(header), "| " + header.map { _ in "---" }.joined(separator: " | ") + " |"] + rows.map(line)).joined(separator: "\n") + "\n"
        case .csv:
            func cell(_ s: String) -> String {
                s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
            }
            return ([header] + rows).map { $0.map(cell).joined(separator: ",") }.joined(separator: "\n") + "\n"
        case .json:
            let objects = rows.map { Dictionary(uniqueKeysWithValues: zip(header, $0)) }
            let data = (try? JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self) + "\n"
        }
    }

    /// JSON keeps types: numbers stay numbers, parameters stay an object.
    static func json(_ trials: [TrialRecord], ranks: [Int]?, sweep: SweepRecord) -> String {
        let objects: [[String: Any]] = trials.enumerated().map { i, t in
            var o: [String: Any] = [
                "trial": t.number, "status": t.status.rawValue, "attempt": t.attempt, "seed": t.seed,
                "parameters": (try? JSONSerialization.jsonObject(with: Data(t.parametersJSON.utf8))) ?? [:],
            ]
            if let r = ranks?[i] { o["rank"] = r }
            if let v = t.objective { o[sweep.objectiveMetric] = v; o["objective"] = v }
            if let e = t.error { o["error"] = e }
            if let w = t.worker { o["worker"] = w }
            return o
        }
        let root: [String: Any] = ["sweep": sweep.name, "objective": ["metric": sweep.objectiveMetric, "direction": sweep.direction.rawValue],
                                   "trials": objects]
        let data = (try? JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
