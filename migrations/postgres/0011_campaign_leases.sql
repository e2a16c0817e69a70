-- 0011 (PostgreSQL): which bot process answers a campaign (see migrations/0011_campaign_leases.sql).

CREATE TABLE campaign_leases (
    campaign_id  BIGINT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    holder       TEXT NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL
);
