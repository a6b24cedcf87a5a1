-- MSNP13+ offline messages go through msn_inbox like live ones: the bridge deletes them on
-- the MSN server only once they are written there, so a killed bridge delivers them at the
-- next start. They keep the time their sender wrote them.
ALTER TABLE msn_inbox ADD COLUMN oim_id TEXT NOT NULL DEFAULT '';  -- '' for a live message
ALTER TABLE msn_inbox ADD COLUMN sent_at BIGINT NOT NULL DEFAULT 0; -- ms; 0: a live message
