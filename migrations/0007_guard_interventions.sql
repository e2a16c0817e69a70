-- 0007: how often the output guard stepped in, per campaign and rule (shown to admins in
-- /campaign status); the text it changed is never kept here.
CREATE TABLE guard_interventions (
    campaign_id  INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    rule         TEXT NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, rule)
);
