-- What MSN said in an IRC channel while none of its readers was there: the catch-up
-- the bot replays when one joins, in the order the bridge received it (seq), kept across
-- restarts. The bridge keeps at most a fixed number of lines per channel (the oldest are
-- trimmed). `channel` is the lower-case channel name; `sender` the speaker's name ('' for
-- the bot's own notices); `received_at` in Unix seconds.
CREATE TABLE irc_backlog (
    channel     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    text        TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (channel, seq)
);
