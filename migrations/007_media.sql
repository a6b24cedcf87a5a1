-- Media uploaded to the homeserver for MSN objects (display pictures, emoticons), by the
-- object's SHA1D: a picture several contacts or owners share is uploaded once.
CREATE TABLE media (
    sha1d      TEXT PRIMARY KEY,
    mxc        TEXT NOT NULL,
    mimetype   TEXT NOT NULL DEFAULT '',
    size       INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0
);
