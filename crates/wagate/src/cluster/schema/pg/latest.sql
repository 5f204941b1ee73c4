-- The cluster's tables at version 2, for a fresh install (the same result as
-- v1.sql then v2.sql; the migration test compares them).

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    draining BOOLEAN NOT NULL DEFAULT false,
    url TEXT
);
CREATE TABLE org_leases (
    org TEXT PRIMARY KEY,
    owner TEXT,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX org_leases_owner ON org_leases (owner);
