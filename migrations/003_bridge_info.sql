-- Portal rooms that carry the bridge's MSC2346 state (m.bridge, uk.half-shot.bridge) in
-- its current form: rooms created before the bridge sent it get it once, at start-up.
CREATE TABLE bridge_info_sent (
    room_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
