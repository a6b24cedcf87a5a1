-- Messages from MSN that the bridge received but has not yet shown on every side: written
-- as soon as a message is read from the switchboard, deleted once it was delivered, and
-- delivered again at the next start when the bridge was killed in between. The MSN
-- server acknowledges a message to its sender as soon as it reaches the bridge's
-- connection, so without this record a killed bridge loses what it had queued.
CREATE TABLE msn_inbox (
    msn_id     TEXT PRIMARY KEY,  -- also the Matrix transaction id of its delivery
    owner      TEXT NOT NULL,
    portal_key TEXT NOT NULL,     -- the other participants (db.portal.portal_key)
    sender     TEXT NOT NULL,
    nick       TEXT NOT NULL,
    text       TEXT NOT NULL,
    format     TEXT NOT NULL,     -- the X-MMS-IM-Format header value
    context    TEXT NOT NULL,     -- P4-Context
    seq        BIGINT NOT NULL    -- receipt order (nanoseconds)
);
CREATE INDEX msn_inbox_seq ON msn_inbox (seq);

-- Matrix events of portal rooms that the homeserver handed over (answered 200, so it will
-- not send them again) but the bridge has not handled yet: written before the answer,
-- deleted once handled, handled again at the next start after a kill. Commands (which
-- may hold a password) are never written here.
CREATE TABLE matrix_inbox (
    event_id TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL,
    event    TEXT NOT NULL,  -- the event as the homeserver sent it (JSON)
    seq      BIGINT NOT NULL -- receipt order
);
CREATE INDEX matrix_inbox_seq ON matrix_inbox (seq);
