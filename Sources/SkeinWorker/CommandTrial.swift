import Foundation
import SkeinConfig
import SkeinSearch
import SkeinWire
import Synchronization

/// An external command as a trial.
///
/// - Arguments: the spec's argument vector with `{name}` replaced by parameter `name`
///   (executed directly, never through a shell).
/// - Environment: `SKEIN_TRIAL_ID`, `SKEIN_TRIAL_NUMBER`, `SKEIN_ATTEMPT`, `SKEIN_SEED`,
///   `SKEIN_PARAMS` (JSON object), `SKEIN_CHECKPOINT_DIR` (created; per sweep and trial under
///   the worker's directory), `SKEIN_RESUME_FROM` (the newest file a previous attempt left in
///   that directory, or empty), plus the spec's `env`.
/// - Metrics: one JSON object per stdout line, e.g. `{"step": 3, "loss": 0.41, "accuracy": 0.88}`;
///   every numeric field except `step` is a metric at that step (`step` defaults to the line
///   count). Other lines are ignored. Each line is taken as it is written (Python's own
///   buffering is off: `PYTHONUNBUFFERED=1` unless set); other programs should flush per line.
/// - Result: exit status 0 → completed, with the objective metric's last reported value (a
///   command that never reports it completes unranked, with a note in its log tail); any other
///   exit or a signal → failed, with the exit status and the last lines of stderr.
struct CommandTrial {
    let assignment: Assignment
    let spec: TrialSpec
    let checkpointDir: String
    static let tailLines = 20

    func run(metrics: MetricBuffer, stop: StopFlag) async -> TrialResult {
        func failed(_ e: String, _ status: Int32 = -1, _ tail: String = "") -> TrialResult {
            TrialResult(outcome: .failed, objective: .nan, exitStatus: status, error: e, logTail: tail)
        }
        let params = (try? JSONDecoder().decode([String: ParameterValue].self, from: Data(assignment.parametersJSON.utf8))) ?? [:]
        var argv: [String] = []
        for arg in spec.command ?? [] {
            var out = arg
            for (k, v) in params { out = out.replacingOccurrences(of: "{\(k)}", with: v.description) }
            argv.append(out)
        }
        guard let program = argv.first else { return failed("empty command") }
        try? FileManager.default.createDirectory(atPath: checkpointDir, withIntermediateDirectories: true)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: program.contains("/") ? program : (Self.which(program) ?? program))
        p.arguments = Array(argv.dropFirst())
        var env = ProcessInfo.processInfo.environment
        // Python buffers a piped stdout in 8 KiB blocks, which would hold its metric lines back
        // until it exits; the spec's env can still say otherwise. (Empty is unset to Python.)
        if env["PYTHONUNBUFFERED", default: ""].isEmpty { env["PYTHONUNBUFFERED"] = "1" }
        for (k, v) in spec.environment { env[k] = v }
        env["SKEIN_TRIAL_ID"] = String(assignment.lease.trialID)
        env["SKEIN_TRIAL_NUMBER"] = String(assignment.trialNumber)
        env["SKEIN_ATTEMPT"] = String(assignment.lease.attempt)
        env["SKEIN_SEED"] = String(assignment.seed)
        env["SKEIN_PARAMS"] = assignment.parametersJSON
        env["SKEIN_CHECKPOINT_DIR"] = checkpointDir
        env["SKEIN_RESUME_FROM"] = Self.newestFile(in: checkpointDir) ?? ""
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice

        let parser = JSONLineMetrics(objective: spec.objective, metrics: metrics)
        let stderrTail = TailBuffer(lines: Self.tailLines)
        let outDone = Latch(), errDone = Latch()
        let exited = Latch()
        p.terminationHandler = { _ in exited.open() }
        do {
            try p.run()
        } catch {
            return failed("cannot start \(program): \(error.localizedDescription)")
        }
        Self.drain(out.fileHandleForReading, done: outDone) { parser.feed($0) }
        Self.drain(err.fileHandleForReading, done: errDone) { stderrTail.feed($0) }
        let deadline = spec.timeoutSeconds.map { Date().addingTimeInterval($0) }
        let pid = p.processIdentifier
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await exited.wait() }
            group.addTask {
                // Watchdog: the timeout, or a stop request (lease revoked, draining), kills the command.
                while !Task.isCancelled {
                    if let deadline, Date() > deadline { stop.stop(.timedOut) }
                    if stop.isSet { kill(pid, SIGKILL); return }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            await group.next()
            group.cancelAll()
        }
        await exited.wait()
        // Foundation's Process holds itself (through its run-loop source), and so its pipes,
        // until waitUntilExit() is called; without it a worker leaked two descriptors per
        // command trial and ran out of them after a few hundred trials. It has exited: no wait.
        p.waitUntilExit()
        // Let the pipes drain so the last metric lines and stderr are not lost.
        for _ in 0..<200 where !(outDone.isOpen && errDone.isOpen) { try? await Task.sleep(for: .milliseconds(5)) }
        parser.finish()
        let status = p.terminationStatus
        let tail = stderrTail.text
        switch stop.reason {
        case .revoked: return TrialResult(outcome: .cancelled, objective: .nan, exitStatus: status, error: "lease revoked", logTail: tail)
        case .draining: return TrialResult(outcome: .handedBack, objective: .nan, exitStatus: status, error: "worker draining", logTail: tail)
        case .timedOut: return failed("timed out after \(spec.timeoutSeconds ?? 0) s", status, tail)
        case .none: break
        }
        if p.terminationReason == .uncaughtSignal { return failed("killed by signal \(status)", status, tail) }
        if status != 0 { return failed("exit status \(status)", status, tail) }
        guard let objective = parser.lastObjective else {
            // Completed, but not ranked: like a run that never logged its summary metric.
            let note = "[skein: the command exited 0 but never reported the objective metric '\(spec.objective)' as a JSON line on stdout]"
            return TrialResult(outcome: .completed, objective: .nan, exitStatus: 0, error: "", logTail: tail.isEmpty ? note : tail + "\n" + note)
        }
        return TrialResult(outcome: .completed, objective: objective, exitStatus: 0, error: "", logTail: tail)
    }

    /// The most recently modified regular file in `dir` (ignoring temporary `*.tmp` files).
    static func newestFile(in dir: String) -> String? {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: dir) else { return nil }
        return names.filter { !$0.hasSuffix(".tmp") }.map { "\(dir)/\($0)" }
            .compactMap { path -> (String, Date)? in
                guard let a = try? fm.attributesOfItem(atPath: path), a[.type] as? FileAttributeType == .typeRegular,
                      let d = a[.modificationDate] as? Date else { return nil }
                return (path, d)
            }
            .max { $0.1 < $1.1 }?.0
    }

    /// Reads a pipe to its end with blocking reads on a thread of its own, handing on each
    /// read as it comes, then closes it. Plain read(2): `FileHandle.read(upToCount:)` waits
    /// for the whole count or the end, which held a command's metrics back until it exited; and
    /// Foundation's `readabilityHandler` (a libdispatch source) crashed the worker once here, in
    /// libdispatch's event loop, with two commands starting at the same moment.
    static func drain(_ handle: FileHandle, done: Latch, into sink: @escaping @Sendable (Data) -> Void) {
        Thread.detachNewThread {
            let fd = handle.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 { sink(Data(buffer[..<n])) } else if n < 0 && errno == EINTR { continue } else { break }
            }
            try? handle.close()
            done.open()
        }
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// Parses JSON-lines metrics from a byte stream.
final class JSONLineMetrics: Sendable {
    let objective: String
    let metrics: MetricBuffer
    private let state = Mutex<(partial: [UInt8], lines: Int, last: Double?)>(([], 0, nil))

    init(objective: String, metrics: MetricBuffer) { self.objective = objective; self.metrics = metrics }

    func feed(_ d: Data) {
        state.withLock { s in
            s.partial.append(contentsOf: d)
            while let nl = s.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(s.partial[..<nl])
                s.partial.removeSubrange(...nl)
                parse(line, &s)
            }
        }
    }

    func finish() {
        state.withLock { s in
            if !s.partial.isEmpty { parse(s.partial, &s); s.partial = [] }
        }
    }

    private func parse(_ line: [UInt8], _ s: inout (partial: [UInt8], lines: Int, last: Double?)) {
        s.lines += 1
        guard line.first == UInt8(ascii: "{"),
              let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return }
        let step = (obj["step"] as? NSNumber)?.int64Value ?? Int64(s.lines)
        let t = Date().timeIntervalSince1970
        for (k, v) in obj where k != "step" {
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { continue }
            let value = n.doubleValue
            metrics.add(MetricPoint(name: k, step: step, value: value, time: t))
            if k == objective { s.last = value }
        }
    }

    var lastObjective: Double? { state.withLock { $0.last } }
}

/// The last lines of a stream.
final class TailBuffer: Sendable {
    let limit: Int
    private let state = Mutex<[UInt8]>([])
    init(lines: Int) { limit = lines }
    func feed(_ d: Data) {
        state.withLock { buf in
            buf.append(contentsOf: d)
            if buf.count > 64 << 10 { buf.removeFirst(buf.count - (64 << 10)) }
        }
    }
    var text: String {
        let s = String(decoding: state.withLock { $0 }, as: UTF8.self)
        return s.split(separator: "\n", omittingEmptySubsequences: false).suffix(limit + 1).joined(separator: "\n")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A one-way flag set from another thread, which tasks can await.
final class Latch: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }
}
