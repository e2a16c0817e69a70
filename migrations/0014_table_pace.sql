-- 0014: table pace. A server's default pace (guild_config.pace: 'live', 'rounds' or 'auto'; NULL: the
-- process default), a campaign's own pace settings and its open round (campaign_pace: one row, NULLs
-- mean "the default"; the round's times are UNIX seconds, so a restarted bot resumes it with the same
-- deadline), and each player's pace choices (pace_players: away, reminders with a ping, the turn their
-- character joined; who has acted in a round is the pending actions themselves).

ALTER TABLE guild_config ADD COLUMN pace TEXT;

CREATE TABLE campaign_pace (
    campaign_id             INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    pace                    TEXT CHECK (pace IN ('live', 'rounds', 'auto')),
    round_deadline_seconds  REAL,
    reminder_share          REAL,
    round_opened_at         REAL,
    round_deadline_at       REAL,
    reminded_at             REAL,
    updated_at              REAL NOT NULL
);

CREATE TABLE pace_players (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    player_id    INTEGER NOT NULL,
    away         INTEGER NOT NULL DEFAULT 0,
    ping         INTEGER NOT NULL DEFAULT 0,
    joined_turn  INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (campaign_id, player_id)
);

INSERT INTO pace_players (campaign_id, player_id, joined_turn, updated_at)
    SELECT ch.campaign_id, ch.player_id, c.turn, ch.created_at
    FROM characters ch JOIN campaigns c ON c.id = ch.campaign_id
    WHERE ch.active = 1
    ON CONFLICT DO NOTHING;
