-- The cheap "anything new?" check before a usage sync (issue 6): a fingerprint of the
-- gateway's most recently updated conversations when its usage was last counted in full,
-- and when that was. A refresh whose fingerprint is unchanged asks for no day at all.
ALTER TABLE usage_syncs ADD COLUMN probe TEXT;
ALTER TABLE usage_syncs ADD COLUMN full_at TEXT;
