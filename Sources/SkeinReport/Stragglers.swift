import SkeinStore

/// Names the rank a data-parallel group waits for.
///
/// Every allreduce, each rank measures how long it waited for the previous rank's first frame
/// (`wait_seconds.rK`, summed per epoch and recorded by rank 0 for all ranks). A rank that is
/// late into the allreduce — slow to compute, or starved of CPU for its communication — makes
/// the rank after it wait; the others barely wait. So the straggler is the predecessor of the
/// rank that waits longest, when that wait stands out. Pure apart from reading the store.
public enum Stragglers {
    /// The longest wait must exceed this multiple of the other ranks' median wait…
    public static let lagFactor = 2.0
    /// …and this many seconds per epoch, so noise on an idle group names nobody.
    public static let minimumWaitSeconds = 0.05

    /// The straggler, if any: its rank, the rank that waited for it, that wait, and the median
    /// wait of the other ranks.
    public static func straggler(waits: [Double]) -> (rank: Int, waiter: Int, waited: Double, typical: Double)? {
        let world = waits.count
        guard world > 1, let waiter = waits.indices.max(by: { waits[$0] < waits[$1] }) else { return nil }
        var others = waits
        others.remove(at: waiter)
        others.sort()
        let median = others.count % 2 == 1 ? others[others.count / 2] : (others[others.count / 2 - 1] + others[others.count / 2]) / 2
        guard waits[waiter] > minimumWaitSeconds, waits[waiter] > lagFactor * median else { return nil }
        return ((waiter + world - 1) % world, waiter, waits[waiter], median)
    }

    /// One line per running data-parallel trial of the sweep whose latest epoch had a straggler.
    public static func lines(store: any RunStore, sweepID: Int64) throws(StoreError) -> [String] {
        var out: [String] = []
        for trial in try store.trials(sweepID: sweepID) where trial.status == .running {
            let names = try store.metricNames(trialID: trial.id).filter { $0.hasPrefix("wait_seconds.r") }
            guard names.count > 1 else { continue }
            var waits = [Double](repeating: 0, count: names.count)
            for name in names {
                guard let r = Int(name.dropFirst("wait_seconds.r".count)), r < waits.count,
                      let last = try store.series(trialID: trial.id, name: name, steps: nil).last else { continue }
                waits[r] = last.value
            }
            if let s = straggler(waits: waits) {
                out.append("trial \(trial.number): rank \(s.rank) is the straggler: rank \(s.waiter) waited \(Report.number(s.waited)) s "
                           + "for it last epoch (other ranks: \(Report.number(s.typical)) s)")
            }
        }
        return out
    }
}
