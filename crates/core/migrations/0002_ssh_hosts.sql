-- Servers reached over SSH, one per instance, with the host key pinned on first contact
-- (after the person confirmed its fingerprint). The app's own private key is in the
-- keychain (`ssh-key/<instance>`); only its public half and fingerprint are here.

CREATE TABLE ssh_hosts (
    instance_id      TEXT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    address          TEXT NOT NULL,
    port             INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    user             TEXT NOT NULL,
    host_key         TEXT NOT NULL,  -- OpenSSH public key line of the pinned host key
    host_fingerprint TEXT NOT NULL,  -- SHA256:… as `ssh-keygen -l` prints it
    pinned_at        TEXT NOT NULL,
    app_key_public   TEXT,           -- the app's own key, once installed on the host
    app_key_fingerprint TEXT,
    updated_at       TEXT NOT NULL
);
