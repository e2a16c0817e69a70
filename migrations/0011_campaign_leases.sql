-- 0011: which bot process answers a campaign. Several processes (shards, or the old and new process of
-- a rolling deploy) may share one database; a process answers a campaign only while it holds the
-- campaign's lease, renewed while its session is loaded and released when it unloads or stops.

CREATE TABLE campaign_leases (
    campaign_id  INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    holder       TEXT NOT NULL,   -- host:pid:random of the process
    expires_at   REAL NOT NULL    -- UNIX seconds; past it, any process may take the lease
);
