-- msnbridge schema v1. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- The loader splits statements at a semicolon that ends a line.

-- A bridged user: someone on Matrix or IRC who owns an MSN login.
-- id is their identity on their side: a Matrix user ID (@alice:example.com) or an IRC
-- identity ("irc:" + account or nick!user@host, chosen by the IRC side).
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    side            TEXT NOT NULL CHECK (side IN ('matrix', 'irc')),
    passport        TEXT UNIQUE,
    password        TEXT,           -- encrypted with bridge.secret_key (msnbridge.secrets)
    management_room TEXT,           -- Matrix DM with the bot, or IRC nick for the bot's PMs
    state           TEXT NOT NULL DEFAULT 'logged_out',
    status          TEXT NOT NULL DEFAULT 'NLN',  -- MSN status the user wants
    created_at      BIGINT NOT NULL DEFAULT 0
);

-- The contact list of one bridged user, as the MSN server last told it.
CREATE TABLE contacts (
    owner    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    passport TEXT NOT NULL,
    nick     TEXT NOT NULL DEFAULT '',
    lists    INTEGER NOT NULL DEFAULT 0,   -- bitmask FL=1 AL=2 BL=4 RL=8 PL=16
    groups   TEXT NOT NULL DEFAULT '',     -- comma-separated group ids
    status   TEXT NOT NULL DEFAULT 'FLN',
    psm      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (owner, passport)
);

CREATE TABLE contact_groups (
    owner    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (owner, group_id)
);

-- A Matrix ghost user standing for an MSN contact, shared by all bridged users.
CREATE TABLE ghosts (
    passport    TEXT PRIMARY KEY,
    mxid        TEXT NOT NULL UNIQUE,
    displayname TEXT,
    avatar_url  TEXT,
    name_set    BOOLEAN NOT NULL DEFAULT false,
    avatar_set  BOOLEAN NOT NULL DEFAULT false
);

-- One conversation of one bridged user. key = the other participants' passports,
-- lower-case, sorted, comma-separated; it outlives MSN switchboard sessions.
CREATE TABLE portals (
    owner         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    room_id       TEXT UNIQUE,
    irc_channel   TEXT UNIQUE,
    is_direct     BOOLEAN NOT NULL DEFAULT true,
    relay_enabled BOOLEAN NOT NULL DEFAULT false,
    name          TEXT,
    PRIMARY KEY (owner, key)
);

-- Which message a Matrix event became on the other sides (and back), so a retried
-- appservice transaction or a repeated IRC line is not sent twice.
CREATE TABLE message_map (
    event_id   TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    msn_id     TEXT,
    irc_id     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX message_map_msn_id ON message_map (msn_id);
CREATE INDEX message_map_irc_id ON message_map (irc_id);

-- Appservice transactions already processed (Synapse retries until it gets a 200).
CREATE TABLE txn_seen (
    txn_id  TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

-- The IRC nick chosen for an MSN contact, kept stable across restarts.
CREATE TABLE irc_nicks (
    passport TEXT PRIMARY KEY,
    nick     TEXT NOT NULL UNIQUE
);
