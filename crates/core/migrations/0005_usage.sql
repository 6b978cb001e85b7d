-- Usage of each assistant as its gateway reports it (`sessions.usage`), per UTC day.
-- A sync replaces the days it asked for (the last day or two), so refreshing a long
-- history costs only what is new. Costs are in US dollars, as the gateway reports them.

-- Tokens and cost of one session on one UTC day.
CREATE TABLE usage_session_days (
    instance_id  TEXT NOT NULL,
    day          TEXT NOT NULL,              -- YYYY-MM-DD (UTC)
    session_key  TEXT NOT NULL,
    label        TEXT,
    channel      TEXT,                       -- NULL: chat in the app or the gateway's own UI
    input        INTEGER NOT NULL,
    output       INTEGER NOT NULL,
    cache_read   INTEGER NOT NULL,
    cache_write  INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost         REAL NOT NULL,
    PRIMARY KEY (instance_id, day, session_key)
) WITHOUT ROWID;
CREATE INDEX usage_session_days_day ON usage_session_days(day);

-- Tokens, cost and number of model calls of one session on one UTC day, per model.
CREATE TABLE usage_model_days (
    instance_id  TEXT NOT NULL,
    day          TEXT NOT NULL,
    session_key  TEXT NOT NULL,
    provider     TEXT NOT NULL,              -- '' when the gateway didn't say
    model        TEXT NOT NULL,
    tokens       INTEGER NOT NULL,
    cost         REAL NOT NULL,
    calls        INTEGER NOT NULL,
    PRIMARY KEY (instance_id, day, session_key, provider, model)
) WITHOUT ROWID;
CREATE INDEX usage_model_days_day ON usage_model_days(day);

-- Where each instance's sync stands.
CREATE TABLE usage_syncs (
    instance_id   TEXT PRIMARY KEY,
    synced_from   TEXT NOT NULL,            -- first day of the last sync's range
    synced_to     TEXT NOT NULL,            -- last day of it
    synced_at     TEXT NOT NULL,            -- RFC 3339, when it succeeded
    attempted_at  TEXT,                     -- last attempt, successful or not
    error         TEXT                      -- why the last attempt failed (NULL: it didn't)
);

-- Spend alerts already given, so each fires once per period, across restarts.
CREATE TABLE spend_alerts (
    kind          TEXT NOT NULL,            -- 'threshold' | 'spike'
    period_start  TEXT NOT NULL,            -- YYYY-MM-DD: the period's (or the day's) first day
    level         INTEGER NOT NULL,         -- percent of the cap, or 0 for a spike
    fired_at      TEXT NOT NULL,
    PRIMARY KEY (kind, period_start, level)
);
