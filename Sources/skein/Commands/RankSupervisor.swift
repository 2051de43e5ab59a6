import Foundation

/// Runs the ranks of `skein train --ranks N` and re-forms the group when one is lost: the
/// survivors keep their processes, report how far they got, and continue as a smaller group
/// from the most advanced survivor's state (same global batch, split over fewer ranks).
final class RankSupervisor: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is behind `lock`; reader threads and termination
    // handlers only post events.
    let directory: String, executable: String, arguments: [String]
    private let lock = NSCondition()
    private var events: [Event] = []
    enum Event { case line(Int, String), exited(Int, Int32) }
    final class Member {
        let process: Process, input: FileHandle
        var rank: Int
        var failedAt: Int?
        var failure = ""
        var status: Int32?
        init(process: Process, input: FileHandle, rank: Int) { self.process = process; self.input = input; self.rank = rank }
    }

    /// Re-forms allowed in a row at a step no further than the furthest yet; the next failure
    /// there ends the run.
    static let reformsWithoutProgressAllowed = 3

    /// CPUs to pin the ranks to (rank r on `cpus[r]`), or nil to let the scheduler place them.
    let cpus: [Int]?

    init(directory: String, executable: String, arguments: [String], cpus: [Int]?) {
        self.directory = directory; self.executable = executable; self.arguments = arguments; self.cpus = cpus
    }

    /// The CPUs this process may run on (its `Cpus_allowed_list`, e.g. "0-3,8"), or nil if unknown.
    static func allowedCPUs() -> [Int]? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        var cpus: [Int] = []
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            guard let low = bounds.first, let high = bounds.last, low <= high else { return nil }
            cpus.append(contentsOf: low...high)
        }
        return cpus.isEmpty ? nil : cpus
    }

    private func post(_ e: Event) { lock.lock(); events.append(e); lock.signal(); lock.unlock() }

    private func peers(epoch: UInt64, count: Int) -> String {
        (0..<count).map { "ipc://\(directory)/e\(epoch)-rank-\($0).ipc" }.joined(separator: ",")
    }

    func run(ranks n: Int) throws {
        var epoch = UInt64.random(in: 1...UInt64(UInt32.max)) << 8
        var members: [Member] = []
        let list = peers(epoch: epoch, count: n)
        for r in 0..<n {
            let p = Process(), stdout = Pipe(), stdin = Pipe()
            let rankArguments = arguments + ["--rank", String(r), "--peers", list, "--group-epoch", String(epoch), "--supervised"]
            if let cpus {
                // taskset (util-linux) sets the affinity before exec, so every thread inherits it.
                p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
                p.arguments = ["-c", String(cpus[r]), executable] + rankArguments
            } else {
                p.executableURL = URL(fileURLWithPath: executable)
                p.arguments = rankArguments
            }
            p.standardOutput = stdout
            p.standardInput = stdin
            p.environment = ProcessInfo.processInfo.environment.merging(["SKEIN_LAUNCHER_PID": String(getpid())]) { _, new in new }
            let index = r
            p.terminationHandler = { [self] proc in post(.exited(index, proc.terminationStatus)) }
            try p.run()
            FileHandle.standardError.write(Data("rank \(r): pid \(p.processIdentifier)\n".utf8))
            members.append(Member(process: p, input: stdin.fileHandleForWriting, rank: r))
            let reader = stdout.fileHandleForReading
            Thread.detachNewThread { [self] in
                var pending = Data()
                while case let chunk = reader.availableData, !chunk.isEmpty {
                    pending.append(chunk)
                    while let nl = pending.firstIndex(of: 10) {
                        post(.line(index, String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)))
                        pending.removeSubrange(pending.startIndex...nl)
                    }
                }
            }
        }
        var reformsWithoutProgress = 0, furthest = -1
        while members.contains(where: { $0.status == nil }) {
            lock.lock()
            while events.isEmpty { lock.wait() }
            let batch = events
            events = []
            lock.unlock()
            for e in batch {
                switch e {
                case let .line(i, text):
                    if text.hasPrefix("@skein failed ") {
                        let parts = text.split(separator: " ", maxSplits: 3)
                        members[i].failedAt = Int(parts[2])
                        members[i].failure = parts.count > 3 ? String(parts[3]) : "?"
                    } else if members[i].rank == 0 && members[i].status == nil {
                        print(text)
                        fflush(nil)
                    }
                case let .exited(i, status):
                    members[i].status = status
                }
            }
            // Re-form once every live rank has reported its failed collective.
            let live = members.filter { $0.status == nil }
            if !live.isEmpty, live.allSatisfy({ $0.failedAt != nil }) {
                epoch += 1
                let order = live.enumerated().sorted { ($0.element.failedAt!, -$0.offset) > ($1.element.failedAt!, -$1.offset) }.map(\.element)
                let list = peers(epoch: epoch, count: order.count)
                let lost = members.count(where: { $0.status != nil })
                let step = order[0].failedAt!
                // A fault that comes back before the group gets any further (a link that keeps
                // dropping, a rank that keeps stalling) would have it re-form forever.
                reformsWithoutProgress = step > furthest ? 0 : reformsWithoutProgress + 1
                furthest = max(furthest, step)
                if reformsWithoutProgress == Self.reformsWithoutProgressAllowed {
                    for m in live { kill(m.process.processIdentifier, SIGKILL) }
                    throw CLIError("data-parallel run stopped: the group failed \(reformsWithoutProgress + 1) times without getting past step \(step) "
                                   + "(last failure: \(order[0].failure))")
                }
                FileHandle.standardError.write(Data("skein: the group failed (\(lost) rank(s) lost so far); re-forming it with \(order.count) rank(s) at step \(step)\n".utf8))
                for (r, m) in order.enumerated() {
                    m.rank = r
                    m.failedAt = nil
                    m.input.write(Data("group \(epoch) \(r) \(list)\n".utf8))
                }
            }
        }
        let ok = members.filter { $0.status == 0 }
        let lost = members.filter { $0.status != 0 }.map { String($0.process.processIdentifier) }
        guard !ok.isEmpty else { throw CLIError("data-parallel run failed: every rank exited with an error") }
        if !lost.isEmpty { FileHandle.standardError.write(Data("skein: finished with \(ok.count) of \(members.count) ranks (lost: pid \(lost.joined(separator: ", ")))\n".utf8)) }
    }
}
