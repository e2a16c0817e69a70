-- 0006: moderation. A server option to check player input and the DM's output with the endpoint's
-- moderation API (NULL: the process default, off), and the player messages it refused: stored, never
-- silently lost, and never sent to the model.

ALTER TABLE guild_config ADD COLUMN moderation INTEGER;

CREATE TABLE refused_messages (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    author_id    INTEGER NOT NULL,
    author_name  TEXT NOT NULL,
    content      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX refused_messages_campaign ON refused_messages (campaign_id, id);
