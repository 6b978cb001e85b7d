-- Time-limited SSH access for a helper ("support window"): a one-time key the app made,
-- valid until `expires_at` (enforced by sshd's expiry-time= and removed by a timer on the
-- server). The private half was shown once and never stored.
CREATE TABLE support_grants (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX support_grants_instance ON support_grants(instance_id);
