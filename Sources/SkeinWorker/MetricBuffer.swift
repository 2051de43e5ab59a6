import Synchronization
import SkeinWire

/// Metric points waiting to be sent, bounded so a slow or absent coordinator can never make
/// training block or memory grow.
///
/// When full (the coordinator has been unreachable for a while), new points are dropped and
/// counted; the count is reported in the trial's final log tail. The objective does not depend
/// on this buffer: it travels in the final `TrialFinished` message, which is retried until the
/// coordinator answers.
public final class MetricBuffer: Sendable {
    public let capacity: Int
    private let state = Mutex<(points: [MetricPoint], dropped: Int)>(([], 0))

    public init(capacity: Int = 20_000) { self.capacity = capacity }

    /// Adds a point without ever blocking; false if it was dropped.
    @discardableResult
    public func add(_ p: MetricPoint) -> Bool {
        state.withLock { s in
            guard s.points.count < capacity else { s.dropped += 1; return false }
            s.points.append(p)
            return true
        }
    }

    /// Takes up to `max` points, oldest first.
    public func take(max: Int = 5_000) -> [MetricPoint] {
        state.withLock { s in
            let n = min(max, s.points.count)
            let out = Array(s.points.prefix(n))
            s.points.removeFirst(n)
            return out
        }
    }

    public var count: Int { state.withLock { $0.points.count } }
    public var dropped: Int { state.withLock { $0.dropped } }
}
