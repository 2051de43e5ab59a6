import Foundation

/// Reads a numeric CSV file with a header row into a data set.
///
/// The label column is chosen by name; every other column must be numeric. For
/// classification, labels are class names (any text) mapped to indices in sorted order, or
/// integers used as they are; for regression, the label is a number. Quoted fields ("…", with
/// "" for a quote) are accepted. Every failure names the file, the line and the column.
public enum CSVReader {
    public enum Task: String, Codable, Sendable { case classification, regression }

    public static func load(_ path: String, labelColumn: String, task: Task, name: String? = nil) throws(DataError) -> (Dataset, classNames: [String]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError(file: path, reason: "cannot open") }
        guard let text = String(data: data, encoding: .utf8) else { throw DataError(file: path, reason: "not UTF-8 text") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let headerLine = lines.first else { throw DataError(file: path, line: 1, reason: "empty file: expected a header row") }
        let header = try fields(headerLine, file: path, line: 1)
        guard let labelIndex = header.firstIndex(of: labelColumn) else {
            throw DataError(file: path, line: 1, column: labelColumn, reason: "no such column in the header (\(header.joined(separator: ", ")))")
        }
        let featureCount = header.count - 1
        guard featureCount > 0 else { throw DataError(file: path, line: 1, reason: "no feature columns besides the label") }
        var features = [Float]()
        var rawLabels = [Substring]()
        var values = [Float]()
        for (i, line) in lines.enumerated().dropFirst() {
            let lineNumber = i + 1
            if line.isEmpty { continue }
            let row = try fields(line, file: path, line: lineNumber)
            guard row.count == header.count else {
                throw DataError(file: path, line: lineNumber, reason: "ragged row: \(row.count) fields, the header has \(header.count)")
            }
            for (j, cell) in row.enumerated() {
                if j == labelIndex {
                    if task == .regression {
                        guard let v = Float(cell.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                            throw DataError(file: path, line: lineNumber, column: header[j], reason: "label '\(cell)' is not a number")
                        }
                        values.append(v)
                    } else {
                        rawLabels.append(Substring(cell.trimmingCharacters(in: .whitespaces)))
                    }
                    continue
                }
                guard let v = Float(cell.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                    throw DataError(file: path, line: lineNumber, column: header[j], reason: "'\(cell)' is not a number")
                }
                features.append(v)
            }
        }
        guard !features.isEmpty else { throw DataError(file: path, reason: "no data rows after the header") }
        let targets: Dataset.Targets
        var classNames: [String] = []
        if task == .regression {
            targets = .values(values, width: 1)
        } else {
            let ints = rawLabels.compactMap { Int32($0) }
            if ints.count == rawLabels.count, let mx = ints.max(), ints.allSatisfy({ $0 >= 0 }) {
                targets = .classes(ints, classCount: Int(mx) + 1)
                classNames = (0...Int(mx)).map(String.init)
            } else {
                classNames = Set(rawLabels.map(String.init)).sorted()
                let index = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, Int32($0)) })
                targets = .classes(rawLabels.map { index[String($0)]! }, classCount: classNames.count)
            }
        }
        let ds = Dataset(name: name ?? (path as NSString).lastPathComponent, features: features, featureCount: featureCount, targets: targets)
        return (ds, classNames)
    }

    /// Splits one line into fields, honouring double quotes.
    static func fields(_ line: Substring, file: String, line lineNumber: Int) throws(DataError) -> [String] {
        var out = [String](), cur = "", quoted = false
        var it = line.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? it.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = it.next() {
                        if n == "\"" { cur.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else { cur.append(c) }
            } else if c == "," {
                out.append(cur); cur = ""
            } else if c == "\"" && cur.isEmpty {
                quoted = true
            } else {
                cur.append(c)
            }
        }
        if quoted { throw DataError(file: file, line: lineNumber, reason: "unterminated quoted field") }
        out.append(cur)
        return out
    }
}
