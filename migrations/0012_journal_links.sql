-- 0012: the campaign journal's links (read-only web pages). A link is a random token of 192 bits;
-- only its SHA-256 is stored, so the database never holds a working link. 'campaign' links open a
-- campaign's journal, 'usage' links a server's usage page (admins). Revoking keeps the row.

CREATE TABLE journal_links (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('campaign', 'usage')),
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE CASCADE,
    guild_id     INTEGER,
    created_by   INTEGER NOT NULL,
    created_at   REAL NOT NULL,
    revoked_at   REAL
);
CREATE INDEX journal_links_campaign ON journal_links (campaign_id);
