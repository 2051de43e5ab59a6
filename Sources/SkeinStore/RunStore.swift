import Foundation

/// The memory of every sweep: sweeps, trials and their attempts, metric series, checkpoints,
/// workers and an append-only event log.
///
/// Contract (every backend passes `Tests/SkeinStoreTests/RunStoreContract.swift`):
/// - **One writer.** One coordinator writes; any number of processes read. Each method that
///   writes is one transaction: it happens entirely or not at all, and once it returns it is
///   durable against a crash of the process.
/// - **Reads are snapshots.** A read sees a consistent state as of some committed transaction
///   and never blocks, or is blocked by, the writer (SQLite: WAL mode and a busy timeout).
/// - **Finished trials are immutable.** Once `completed`, `pruned` or `cancelled`, a trial's
///   row never changes; `failed` changes only through `requeueFailed`.
/// - **Fencing.** `finishAttempt` and `revokeLease` act only when the given attempt is the
///   trial's current one and it is running; a late result from a revoked lease changes nothing.
/// - **Thread-safety.** Implementations are `Sendable`; calls may come from any thread and
///   block the caller for the duration of one transaction.
public protocol RunStore: Sendable {
    // Sweeps
    /// Creates a sweep; `.conflict` if the name is taken.
    func createSweep(_ sweep: NewSweep) throws(StoreError) -> SweepRecord
    func sweep(named name: String) throws(StoreError) -> SweepRecord?
    func sweep(id: Int64) throws(StoreError) -> SweepRecord?
    func sweeps() throws(StoreError) -> [SweepRecord]
    func setSweepStatus(_ id: Int64, _ status: SweepStatus) throws(StoreError)
    func saveSearcherState(_ id: Int64, _ state: Data) throws(StoreError)
    /// Sets the sweep's trial budget (`skein sweep extend`).
    func setMaxTrials(_ id: Int64, _ maxTrials: Int) throws(StoreError)

    // Trials
    /// Creates a queued trial; `.conflict` if the sweep already has that trial number.
    func createTrial(_ trial: NewTrial) throws(StoreError) -> TrialRecord
    func trial(id: Int64) throws(StoreError) -> TrialRecord?
    func trials(sweepID: Int64) throws(StoreError) -> [TrialRecord]
    /// Starts the next attempt of a queued trial under a lease for `worker`; returns the new
    /// attempt number. `.immutable` if the trial is finished, `.conflict` if it is running.
    func startAttempt(trialID: Int64, worker: String, leaseExpiresAt: Double) throws(StoreError) -> Int
    /// Extends the lease of the current attempt (heartbeat). False if `attempt` is not current.
    func renewLease(trialID: Int64, attempt: Int, until: Double) throws(StoreError) -> Bool
    /// Creates trials and starts their first attempts, all in one transaction; returns them as started.
    func createAndStartTrials(_ trials: [NewTrial], worker: String, leaseExpiresAt: Double) throws(StoreError) -> [TrialRecord]
    /// Records the end of an attempt, with its last metric points, in one transaction. Returns
    /// false, changing nothing, if `attempt` is not the trial's current running attempt (a
    /// stale or revoked lease).
    func finishAttempt(trialID: Int64, attempt: Int, outcome: AttemptOutcome, metrics: [MetricRow]) throws(StoreError) -> Bool
    /// `finishAttempt` for many attempts in one transaction (group commit); one result each.
    func finishAttempts(_ items: [AttemptEnd]) throws(StoreError) -> [Bool]
    /// Takes a running attempt back (worker lost, handed back): the trial is queued again.
    /// False if `attempt` is not the current running one.
    func revokeLease(trialID: Int64, attempt: Int, reason: String) throws(StoreError) -> Bool
    /// Puts a failed trial back in the queue (a person asked for a retry).
    func requeueFailed(trialID: Int64) throws(StoreError)
    /// Keeps the error and log tail of a failed attempt on a trial queued for a retry.
    func recordAttemptError(trialID: Int64, error: String, logTail: String) throws(StoreError)
    /// Cancels a queued trial (sweep cancelled or out of time). `.conflict` if it is not queued.
    func cancelQueued(trialID: Int64, reason: String) throws(StoreError)

    // Metrics
    /// Appends metric points in one transaction (group commit). Points of one trial, attempt
    /// and metric are stored as chunks; memory use is bounded by the batch.
    func appendMetrics(_ points: [MetricRow]) throws(StoreError)
    /// A trial's series for a metric, by step, optionally limited to a step range. Where a
    /// later attempt re-reported a step (after a resume), its value wins.
    func series(trialID: Int64, name: String, steps: ClosedRange<Int64>?) throws(StoreError) -> [SeriesPoint]
    func metricNames(trialID: Int64) throws(StoreError) -> [String]

    // Queries
    /// The best `top` completed trials by objective, in the sweep's direction; ties by trial number.
    func leaderboard(sweepID: Int64, top: Int) throws(StoreError) -> [LeaderboardEntry]
    func summary(sweepID: Int64) throws(StoreError) -> SweepSummary

    // Checkpoints, workers, events
    func recordCheckpoint(trialID: Int64, attempt: Int, step: Int64, contentHash: String, size: Int64, path: String) throws(StoreError)
    /// Stores a checkpoint file content-addressed (SHA-256) next to the database, written
    /// atomically (temporary file, fsync, rename), and records it for the attempt. Storing the
    /// same bytes twice keeps one file.
    func saveCheckpoint(trialID: Int64, attempt: Int, step: Int64, bytes: [UInt8]) throws(StoreError) -> CheckpointRecord
    /// The bytes of a stored checkpoint, by content hash; nil if unknown.
    func checkpointBytes(hash: String) throws(StoreError) -> [UInt8]?
    func latestCheckpoint(trialID: Int64) throws(StoreError) -> CheckpointRecord?
    func upsertWorker(_ worker: WorkerRecord) throws(StoreError)
    func workers() throws(StoreError) -> [WorkerRecord]
    func appendEvent(_ kind: StoreEvent.Kind, sweepID: Int64?, trialID: Int64?, attempt: Int?, workerID: String?, detail: String) throws(StoreError)
    func events(sweepID: Int64?, limit: Int) throws(StoreError) -> [StoreEvent]
}
