-- IRC users the owner of a conversation let into its IRC channel (`allow <nick>` on IRC,
-- `irc allow <nick>` in a Matrix portal room), kept across restarts. Nicks are stored
-- lower-case; a portal that goes away takes its allow list with it.
CREATE TABLE irc_allowed (
    owner      TEXT NOT NULL,
    portal_key TEXT NOT NULL,
    nick       TEXT NOT NULL,
    PRIMARY KEY (owner, portal_key, nick),
    FOREIGN KEY (owner, portal_key) REFERENCES portals (owner, key) ON DELETE CASCADE
);
