-- 0008: table safety tools per campaign: lines (never in the story) and veils (happen off screen),
-- set by the campaign's creator or an admin, and how often the X-card was used (never by whom).
CREATE TABLE campaign_safety (
    campaign_id  INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    lines        TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    veils        TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    xcard_uses   INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL
);
