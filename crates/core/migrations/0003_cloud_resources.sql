-- Every billed or billable thing Clawkeeper creates at a cloud provider, written down BEFORE
-- the create call, so that a crash can never leave an untracked server running.
-- state: intended (about to call the provider) → created (provider id known) → deleted;
--        or intended → absent (the call never reached the provider).
-- No foreign key to instances: the journal must outlive the instance row until every
-- resource is gone at the provider.
CREATE TABLE cloud_resources (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL,
    provider     TEXT NOT NULL DEFAULT 'hetzner',
    kind         TEXT NOT NULL CHECK (kind IN ('ssh_key', 'firewall', 'server')),
    name         TEXT NOT NULL,
    -- the value of the clawkeeper-instance label the resource carries at the provider
    label        TEXT NOT NULL,
    provider_id  INTEGER,
    state        TEXT NOT NULL CHECK (state IN ('intended', 'created', 'deleted', 'absent')),
    detail       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CHECK (state != 'created' OR provider_id IS NOT NULL)
);

CREATE INDEX cloud_resources_by_instance ON cloud_resources (instance_id, kind, state);
