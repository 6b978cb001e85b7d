-- Clawkeeper's own state. Secrets are never stored here: only references into the keychain.

CREATE TABLE instances (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    target          TEXT NOT NULL CHECK (target IN ('local', 'ssh', 'cloud')),
    port            INTEGER NOT NULL,
    desired_state   TEXT NOT NULL DEFAULT 'stopped' CHECK (desired_state IN ('running', 'stopped')),
    openclaw_version TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE providers (
    instance_id     TEXT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('openrouter', 'openai_compatible')),
    base_url        TEXT NOT NULL,
    model           TEXT NOT NULL,
    key_ref         TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    key_saved_at    TEXT NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    instance_id TEXT,
    state       TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    step        TEXT,
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    error_code  TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE job_steps (
    job_id  TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    state   TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'skipped')),
    detail  TEXT,
    at      TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Append-only, hash-chained: hash = sha256(prev_hash || seq || at || instance || action || detail).
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    instance_id TEXT,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
