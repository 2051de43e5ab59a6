import Foundation
import SkeinStore
import SkeinTestSupport

/// A coordinator and workers as real `skein` processes in a temporary run directory.
final class LocalCluster: @unchecked Sendable {
    // @unchecked: used by one test task at a time; the child list is only touched from it.
    let dir: String
    let address: String
    let coordinator: ChildProcess
    private(set) var workers: [ChildProcess] = []
    let heartbeat: Double

    init(transport: String = "ipc", heartbeat: Double = 0.5, coordinatorArguments: [String] = [], listen: String? = nil) async throws {
        dir = try TemporaryDirectory.make(prefix: "cluster")
        try "test-token-\(UUID().uuidString)\n".write(toFile: "\(dir)/token", atomically: true, encoding: .utf8)
        self.heartbeat = heartbeat
        let listen = listen ?? (transport == "tcp" ? "tcp://127.0.0.1:0" : "ipc://\(dir)/coordinator.ipc")
        coordinator = try ChildProcess("skein", ["coordinator", "--listen", listen, "--run-dir", dir, "--heartbeat", String(heartbeat)]
                                       + coordinatorArguments)
        let line = try await coordinator.waitForLine(startingWith: "listening ")
        address = String(line.dropFirst("listening ".count))
    }

    /// The environment of a worker that is killed, drained or cut off mid-training: it sleeps
    /// 20 ms per step (its group with it; the numbers do not change). At full speed a test trial
    /// can end within a second of its first checkpoint past the point the test waits for, and
    /// on a busy machine a checkpoint upload can lag that long (each is fsynced): CI once saw the
    /// first checkpoint past the kill point be the final one, so the kill came after the result.
    static let slowSteps = ["SKEIN_INJECT_STEP_DELAY_MS": "20"]

    @discardableResult
    func addWorker(_ name: String, slots: Int = 1, tokenFile: String? = nil, environment: [String: String] = [:],
                   launcher: [String] = []) throws -> ChildProcess {
        let w = try ChildProcess("skein", ["worker", "--join", address, "--token-file", tokenFile ?? "\(dir)/token", "--name", name,
                                           "--slots", String(slots), "--run-dir", dir, "--log-level", "debug"], environment: environment,
                                 launcher: launcher)
        workers.append(w)
        return w
    }

    /// Submits a sweep through the CLI, as a person would.
    func submit(_ yaml: String, name: String) async throws {
        let path = "\(dir)/\(name).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let p = try ChildProcess("skein", ["sweep", "launch", path, "--coordinator", address, "--token-file", "\(dir)/token"])
        let status = try await p.waitForExit()
        guard status == 0 else { throw ClusterError("sweep launch exited \(status): \(p.log)") }
    }

    var store: SQLiteRunStore { get throws { try SQLiteRunStore(path: "\(dir)/skein.sqlite") } }

    /// Waits until the sweep is no longer running; returns its record.
    func waitForSweep(_ name: String, timeout: Duration = .seconds(120)) async throws -> SweepRecord {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = try store.sweep(named: name), s.status != .running { return s }
            if !coordinator.isRunning { throw ClusterError("coordinator exited: \(coordinator.log)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ClusterError("sweep \(name) did not finish in time.\ncoordinator:\n\(coordinator.log.suffix(3000))\nworkers:\n" +
                           workers.map { String($0.log.suffix(2000)) }.joined(separator: "\n---\n"))
    }

    func stop() {
        for w in workers { w.kill(SIGKILL) }
        coordinator.kill(SIGKILL)
    }

    deinit { stop() }
}

struct ClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A random search over x in [0, 1] whose trials run `command` (a YAML flow sequence) and
/// minimise the `loss` it prints.
func commandSweep(_ name: String, trials: Int, seed: Int = 2, command: String) -> String {
    """
    name: \(name)
    seed: \(seed)
    objective: {metric: loss, direction: minimize}
    budget: {max_trials: \(trials)}
    trial:
      kind: command
      command: \(command)
    search:
      method: random
      parameters:
        x: {uniform: [0, 1]}
    """
}

/// A sweep of no-op trials (instant; objective = x + y).
func noopSweep(_ name: String, trials: Int, method: String = "random", seed: Int = 5) -> String {
    """
    name: \(name)
    seed: \(seed)
    objective: {metric: objective, direction: maximize}
    budget: {max_trials: \(trials)}
    trial: {kind: noop}
    search:
      method: \(method)
      parameters:
        x: {uniform: [0, 1]}
        y: {loguniform: [0.001, 1]}
    """
}
