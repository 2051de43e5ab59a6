import GRDB

/// The schema, as named, append-only migrations. Never edit a migration that has shipped:
/// add a new one. Tests migrate from an empty database and from every earlier version.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-initial") { db in
            try db.execute(sql: """
                CREATE TABLE sweeps (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    config_text TEXT NOT NULL,
                    config_hash TEXT NOT NULL,
                    seed INTEGER NOT NULL,
                    code_version TEXT NOT NULL,
                    dataset_hash TEXT NOT NULL,
                    objective_metric TEXT NOT NULL,
                    objective_direction TEXT NOT NULL CHECK (objective_direction IN ('minimize', 'maximize')),
                    status TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    finished_at REAL,
                    searcher_state BLOB
                );
                CREATE TABLE trials (
                    id INTEGER PRIMARY KEY,
                    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
                    number INTEGER NOT NULL,
                    parameters TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempt INTEGER NOT NULL DEFAULT 0,
                    worker TEXT,
                    lease_expires_at REAL,
                    seed INTEGER NOT NULL,
                    error TEXT,
                    log_tail TEXT,
                    created_at REAL NOT NULL,
                    started_at REAL,
                    finished_at REAL,
                    objective REAL,
                    UNIQUE (sweep_id, number)
                );
                -- Top-k reads this index in order and stops after k rows, in either direction.
                CREATE INDEX trials_by_objective ON trials (sweep_id, objective) WHERE status = 'completed' AND objective IS NOT NULL;
                CREATE INDEX trials_by_status ON trials (sweep_id, status);
                -- Finished trials never change (failed ones only back to queued, on request).
                CREATE TRIGGER trials_finished_are_immutable BEFORE UPDATE ON trials
                WHEN OLD.status IN ('completed', 'pruned', 'cancelled')
                  OR (OLD.status = 'failed' AND NEW.status <> 'queued')
                BEGIN SELECT RAISE(ABORT, 'finished trials are immutable'); END;
                CREATE TRIGGER trials_not_deleted BEFORE DELETE ON trials
                BEGIN SELECT RAISE(ABORT, 'trials are never deleted'); END;

                CREATE TABLE metric_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
                -- A row holds a run of points of one trial attempt and metric: steps, values and
                -- times as packed little-endian arrays (Int64, Float64, Float64).
                CREATE TABLE metric_chunks (
                    id INTEGER PRIMARY KEY,
                    trial_id INTEGER NOT NULL REFERENCES trials(id),
                    attempt INTEGER NOT NULL,
                    name_id INTEGER NOT NULL REFERENCES metric_names(id),
                    first_step INTEGER NOT NULL,
                    last_step INTEGER NOT NULL,
                    count INTEGER NOT NULL,
                    steps BLOB NOT NULL,
                    vals BLOB NOT NULL,
                    times BLOB NOT NULL
                );
                CREATE INDEX metric_chunks_by_series ON metric_chunks (trial_id, name_id, first_step);

                CREATE TABLE checkpoints (
                    id INTEGER PRIMARY KEY,
                    trial_id INTEGER NOT NULL REFERENCES trials(id),
                    attempt INTEGER NOT NULL,
                    step INTEGER NOT NULL,
                    content_hash TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    path TEXT NOT NULL,
                    created_at REAL NOT NULL
                );
                CREATE INDEX checkpoints_by_trial ON checkpoints (trial_id, step);

                CREATE TABLE workers (
                    id TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    slots INTEGER NOT NULL,
                    joined_at REAL NOT NULL,
                    last_seen REAL NOT NULL,
                    state TEXT NOT NULL
                );

                CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time REAL NOT NULL,
                    kind TEXT NOT NULL,
                    sweep_id INTEGER,
                    trial_id INTEGER,
                    attempt INTEGER,
                    worker_id TEXT,
                    detail TEXT NOT NULL
                );
                CREATE INDEX events_by_sweep ON events (sweep_id, id);
                CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
                BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
                BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                """)
        }
        m.registerMigration("v2-budget-override") { db in
            // `skein sweep extend` raises a sweep's trial budget without editing its stored config.
            try db.execute(sql: "ALTER TABLE sweeps ADD COLUMN max_trials_override INTEGER")
        }
        return m
    }
}
