-- Usage of each assistant as its gateway reports it (`sessions.usage`, one UTC day per
-- call), per UTC day. A sync replaces the days it asked for (the last few), so refreshing a
-- long history costs only what is new. Costs are in US dollars, as the gateway reports them.

-- A day's totals (every conversation).
CREATE TABLE usage_days (
    instance_id  TEXT NOT NULL,
    day          TEXT NOT NULL,              -- YYYY-MM-DD (UTC)
    input        INTEGER NOT NULL,
    output       INTEGER NOT NULL,
    cache_read   INTEGER NOT NULL,
    cache_write  INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost         REAL NOT NULL,
    PRIMARY KEY (instance_id, day)
) WITHOUT ROWID;
CREATE INDEX usage_days_day ON usage_days(day);

-- A day's use of each model (total tokens only: the gateway doesn't split them per model).
CREATE TABLE usage_model_days (
    instance_id  TEXT NOT NULL,
    day          TEXT NOT NULL,
    provider     TEXT NOT NULL,              -- '' when the gateway didn't say
    model        TEXT NOT NULL,
    tokens       INTEGER NOT NULL,
    cost         REAL NOT NULL,
    calls        INTEGER NOT NULL,
    PRIMARY KEY (instance_id, day, provider, model)
) WITHOUT ROWID;
CREATE INDEX usage_model_days_day ON usage_model_days(day);

-- A day's use per messaging channel; 'app' is chat that came through no channel (this
-- app, the gateway's own page).
CREATE TABLE usage_channel_days (
    instance_id  TEXT NOT NULL,
    day          TEXT NOT NULL,
    channel      TEXT NOT NULL,
    input        INTEGER NOT NULL,
    output       INTEGER NOT NULL,
    cache_read   INTEGER NOT NULL,
    cache_write  INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost         REAL NOT NULL,
    PRIMARY KEY (instance_id, day, channel)
) WITHOUT ROWID;
CREATE INDEX usage_channel_days_day ON usage_channel_days(day);

-- The day's most recently active conversations (at most a few dozen a day), for "which
-- conversation cost this".
CREATE TABLE usage_session_days (
    instance_id  TEXT NOT NULL,
    day          TEXT NOT NULL,
    session_key  TEXT NOT NULL,
    label        TEXT,
    channel      TEXT,
    input        INTEGER NOT NULL,
    output       INTEGER NOT NULL,
    cache_read   INTEGER NOT NULL,
    cache_write  INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost         REAL NOT NULL,
    PRIMARY KEY (instance_id, day, session_key)
) WITHOUT ROWID;
CREATE INDEX usage_session_days_day ON usage_session_days(day);

-- Where each instance's sync stands.
CREATE TABLE usage_syncs (
    instance_id   TEXT PRIMARY KEY,
    synced_from   TEXT NOT NULL,            -- first day of the last sync's range
    synced_to     TEXT NOT NULL,            -- last day of it
    synced_at     TEXT NOT NULL,            -- RFC 3339, when it succeeded
    attempted_at  TEXT,                     -- last attempt, successful or not
    error         TEXT,                     -- why the last attempt failed (NULL: it didn't)
    gateway_at    INTEGER                   -- newest `updatedAt` (gateway clock, ms) of its answers
);

-- Spend alerts (and pauses at the cap) already given, so each happens once per period,
-- across restarts.
CREATE TABLE spend_alerts (
    kind          TEXT NOT NULL,            -- 'threshold' | 'spike' | 'pause'
    period_start  TEXT NOT NULL,            -- YYYY-MM-DD: the period's (or the day's) first day
    level         INTEGER NOT NULL,         -- percent of the cap, or 0 for a spike
    fired_at      TEXT NOT NULL,
    PRIMARY KEY (kind, period_start, level)
);
