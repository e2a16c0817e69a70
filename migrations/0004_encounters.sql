-- 0004: combat. One encounter per campaign (its state as JSON, see bot/game/combat.py), the
-- tracker message that shows it, and for /undo and /retry the encounter as it was before each turn
-- that changed it.

CREATE TABLE encounters (
    campaign_id         INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    state               TEXT NOT NULL,      -- JSON of Encounter.to_dict()
    tracker_channel_id  INTEGER,
    tracker_message_id  INTEGER,
    updated_at          REAL NOT NULL
);

CREATE TABLE encounter_snapshots (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    turn         INTEGER NOT NULL,
    state        TEXT,                      -- the encounter before the turn changed it; NULL: none
    created_at   REAL NOT NULL,
    UNIQUE (campaign_id, turn)
);
