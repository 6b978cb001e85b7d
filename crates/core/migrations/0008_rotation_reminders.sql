-- Rotation reminders (issue 7): when the person was last reminded to change each key, and
-- about which version of it (its `secret_ages.set_at` then). A reminder is given once per
-- due key and version: again only after a while if the key is still not changed, never
-- again once it changed (its set_at moves on). Survives restarts, so a restart doesn't
-- remind twice. The schedule itself is the setting `rotation.remind_days`.
CREATE TABLE rotation_reminders (
    instance_id  TEXT NOT NULL,
    secret       TEXT NOT NULL,
    set_at       TEXT NOT NULL,   -- the secret_ages.set_at the reminder was about
    reminded_at  TEXT NOT NULL,
    PRIMARY KEY (instance_id, secret)
);
