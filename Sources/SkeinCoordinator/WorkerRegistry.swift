import SkeinWire

/// The workers a coordinator knows and a heartbeat failure detector over them. Pure: time is
/// passed in (seconds), events come back as values; no clocks, sockets or threads.
///
/// A worker is `alive` while heartbeats arrive, `suspect` once one interval is late by more
/// than `suspectAfter`, and `dead` after `deadAfter` without a heartbeat (the coordinator then
/// revokes its leases). A dead worker that speaks again must join anew.
public struct WorkerRegistry: Sendable {
    public struct Settings: Sendable, Equatable {
        public var heartbeatInterval: Double
        public var suspectAfter: Double
        public var deadAfter: Double
        /// Defaults: heartbeat every 0.5 s, suspect after 1 s, dead after 2 s (4 missed beats).
        public init(heartbeatInterval: Double = 0.5, suspectAfter: Double? = nil, deadAfter: Double? = nil) {
            self.heartbeatInterval = heartbeatInterval
            self.suspectAfter = suspectAfter ?? 2 * heartbeatInterval
            self.deadAfter = deadAfter ?? 4 * heartbeatInterval
        }
    }

    public enum State: String, Sendable, Equatable { case alive, suspect, dead }

    public struct Worker: Sendable, Equatable {
        public var id: String
        public var name: String
        public var host: String
        public var slots: Int
        public var joinedAt: Double
        public var lastSeen: Double
        public var state: State
        public var leases: Set<Lease>
    }

    public enum Event: Sendable, Equatable {
        case suspect(String)
        case recovered(String)
        case dead(String, leases: Set<Lease>)
    }

    public let settings: Settings
    public private(set) var workers: [String: Worker] = [:]

    public init(settings: Settings = Settings()) { self.settings = settings }

    public mutating func onJoin(id: String, name: String, host: String, slots: Int, now: Double) {
        workers[id] = Worker(id: id, name: name, host: host, slots: slots, joinedAt: now, lastSeen: now, state: .alive, leases: [])
    }

    /// A sign of life (any request). Returns false if the worker is unknown or already dead.
    @discardableResult
    public mutating func onSeen(_ id: String, now: Double) -> Bool {
        guard var w = workers[id], w.state != .dead else { return false }
        w.lastSeen = max(w.lastSeen, now)
        w.state = .alive
        workers[id] = w
        return true
    }

    public mutating func onLeaseGranted(_ lease: Lease, to id: String) { workers[id]?.leases.insert(lease) }
    public mutating func onLeaseEnded(_ lease: Lease, worker id: String) { workers[id]?.leases.remove(lease) }

    /// The worker left on its own (drained); returns the leases it still held.
    public mutating func onLeave(_ id: String) -> Set<Lease> {
        let leases = workers[id]?.leases ?? []
        workers[id]?.state = .dead
        workers[id]?.leases = []
        return leases
    }

    /// Advances the detector to `now`.
    public mutating func onTick(now: Double) -> [Event] {
        var events: [Event] = []
        for id in workers.keys.sorted() {
            guard var w = workers[id], w.state != .dead else { continue }
            let silent = now - w.lastSeen
            if silent > settings.deadAfter {
                events.append(.dead(id, leases: w.leases))
                w.state = .dead
                w.leases = []
            } else if silent > settings.suspectAfter, w.state == .alive {
                w.state = .suspect
                events.append(.suspect(id))
            }
            workers[id] = w
        }
        return events
    }

    public var alive: [Worker] { workers.values.filter { $0.state != .dead }.sorted { $0.joinedAt < $1.joinedAt || ($0.joinedAt == $1.joinedAt && $0.id < $1.id) } }
    public func isAlive(_ id: String) -> Bool { workers[id].map { $0.state != .dead } ?? false }
}
