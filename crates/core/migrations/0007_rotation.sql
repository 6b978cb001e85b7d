-- Key rotation (issue 7): one row per rotation of one secret, the journal of a persisted
-- state machine (mint new -> install -> verify new -> revoke old -> verify old refused ->
-- commit). `step` is the next step to run; a crashed rotation is resumed from it, forward,
-- or rolled back while the old secret was not yet revoked. No secret is ever in this table:
-- the new one waits in the keychain (its staging entry) until the commit, and rows carry
-- fingerprints only.
CREATE TABLE rotations (
    id              INTEGER PRIMARY KEY,
    batch           TEXT,                       -- "Rotate all" run this belongs to, if any
    instance_id     TEXT NOT NULL,
    secret          TEXT NOT NULL,              -- which secret: gateway-token, ssh-key, ...
    step            TEXT NOT NULL,              -- next step to run (see rotation::Step)
    direction       TEXT NOT NULL DEFAULT 'forward', -- forward | rollback
    outcome         TEXT,                       -- NULL while running; done | rolled_back
    old_fingerprint TEXT,
    new_fingerprint TEXT,
    detail          TEXT NOT NULL DEFAULT '{}', -- the rotator's non-secret state (JSON)
    error           TEXT,                       -- the last failure, as shown to the person
    attempts        INTEGER NOT NULL DEFAULT 0, -- failed attempts of the current step
    started_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT
);

-- At most one rotation of a secret runs at a time.
CREATE UNIQUE INDEX rotations_running ON rotations (instance_id, secret) WHERE outcome IS NULL;

-- When each secret was last set (by the app or by a rotation), for the keys inventory's
-- "age" and the rotation reminders.
CREATE TABLE secret_ages (
    instance_id  TEXT NOT NULL,
    secret       TEXT NOT NULL,
    set_at       TEXT NOT NULL,
    rotated_at   TEXT,
    fingerprint  TEXT,
    PRIMARY KEY (instance_id, secret)
);
