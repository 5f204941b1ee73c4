-- PostgreSQL, version 1 of the device tables: every org's WhatsApp client state, each
-- row keyed by the org's device number (dev, the org incarnation). Signal
-- records are stored as the library hands them over; structured state as JSON.
-- Released: this file never changes; a new version is a new file.

CREATE TABLE device (
    dev BIGINT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE identities (
    dev BIGINT NOT NULL, address TEXT NOT NULL, key BYTEA NOT NULL,
    PRIMARY KEY (dev, address)
);
CREATE TABLE sessions (
    dev BIGINT NOT NULL, address TEXT NOT NULL, record BYTEA NOT NULL,
    PRIMARY KEY (dev, address)
);
CREATE TABLE prekeys (
    dev BIGINT NOT NULL, id BIGINT NOT NULL, record BYTEA NOT NULL, uploaded BIGINT NOT NULL,
    PRIMARY KEY (dev, id)
);
CREATE TABLE signed_prekeys (
    dev BIGINT NOT NULL, id BIGINT NOT NULL, record BYTEA NOT NULL,
    PRIMARY KEY (dev, id)
);
CREATE TABLE sender_keys (
    dev BIGINT NOT NULL, address TEXT NOT NULL, record BYTEA NOT NULL,
    PRIMARY KEY (dev, address)
);
CREATE TABLE sync_keys (
    dev BIGINT NOT NULL, key_id BYTEA NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (dev, key_id)
);
CREATE TABLE app_versions (
    dev BIGINT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (dev, name)
);
CREATE TABLE mutation_macs (
    dev BIGINT NOT NULL, name TEXT NOT NULL, index_mac BYTEA NOT NULL, version BIGINT NOT NULL,
    value_mac BYTEA NOT NULL,
    PRIMARY KEY (dev, name, index_mac)
);
CREATE TABLE sender_key_devices (
    dev BIGINT NOT NULL, group_jid TEXT NOT NULL, device_jid TEXT NOT NULL, has_key BIGINT NOT NULL,
    PRIMARY KEY (dev, group_jid, device_jid)
);
CREATE TABLE lid_map (
    dev BIGINT NOT NULL, lid TEXT NOT NULL, pn TEXT NOT NULL, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, source TEXT NOT NULL,
    UNIQUE (dev, lid)
);
CREATE INDEX lid_map_pn ON lid_map(dev, pn);
CREATE TABLE base_keys (
    dev BIGINT NOT NULL, address TEXT NOT NULL, message_id TEXT NOT NULL, base_key BYTEA NOT NULL,
    PRIMARY KEY (dev, address, message_id)
);
CREATE TABLE device_lists (
    dev BIGINT NOT NULL, "user" TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (dev, "user")
);
CREATE TABLE group_meta (
    dev BIGINT NOT NULL, group_jid TEXT NOT NULL, blob BYTEA NOT NULL,
    PRIMARY KEY (dev, group_jid)
);
CREATE TABLE tc_tokens (
    dev BIGINT NOT NULL, jid TEXT NOT NULL, token BYTEA NOT NULL, token_ts BIGINT NOT NULL,
    sender_ts BIGINT,
    PRIMARY KEY (dev, jid)
);
CREATE TABLE sent_messages (
    dev BIGINT NOT NULL, chat TEXT NOT NULL, id TEXT NOT NULL, payload BYTEA NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (dev, chat, id)
);
CREATE INDEX sent_messages_ts ON sent_messages(dev, ts);
CREATE TABLE pending_inbound (
    dev BIGINT NOT NULL, chat TEXT NOT NULL, sender TEXT NOT NULL, id TEXT NOT NULL,
    message BYTEA NOT NULL, ts BIGINT NOT NULL,
    PRIMARY KEY (dev, chat, sender, id)
);
CREATE TABLE msg_secrets (
    dev BIGINT NOT NULL, chat TEXT NOT NULL, sender TEXT NOT NULL, msg_id TEXT NOT NULL,
    secret BYTEA NOT NULL, expires_at BIGINT NOT NULL, message_ts BIGINT NOT NULL,
    PRIMARY KEY (dev, chat, sender, msg_id)
);
