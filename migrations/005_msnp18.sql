-- MSNP16+: each bridged account's machine GUID, reused after a restart so the bridge is
-- the same endpoint (the owner's own Messenger stays signed in beside it).
ALTER TABLE users ADD COLUMN machine_guid TEXT;

-- MSNP13+: offline messages already delivered to the owner, by their server id, so one
-- that is still on the server after a restart (a lost delete) is not shown twice.
CREATE TABLE offline_seen (
    owner   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    oim_id  TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (owner, oim_id)
);
