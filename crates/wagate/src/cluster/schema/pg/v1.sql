-- PostgreSQL, version 1 of the cluster's tables: the nodes (heartbeats,
-- draining) and who owns which organization (a lease with an epoch that
-- grows on every change of owner, and an expiry on the database's clock).
-- Released: this file never changes; a new version is a new file.

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    draining BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE org_leases (
    org TEXT PRIMARY KEY,
    owner TEXT,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX org_leases_owner ON org_leases (owner);
