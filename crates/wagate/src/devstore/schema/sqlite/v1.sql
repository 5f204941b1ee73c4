-- Version 1 of the device tables: every org's WhatsApp client state, each
-- row keyed by the org's device number (dev, the org incarnation). Signal
-- records are stored as the library hands them over; structured state as JSON.
-- Released: this file never changes; a new version is a new file.

CREATE TABLE device (
    dev INTEGER PRIMARY KEY,
    data TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE identities (
    dev INTEGER NOT NULL, address TEXT NOT NULL, key BLOB NOT NULL,
    PRIMARY KEY (dev, address)
) WITHOUT ROWID;
CREATE TABLE sessions (
    dev INTEGER NOT NULL, address TEXT NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (dev, address)
) WITHOUT ROWID;
CREATE TABLE prekeys (
    dev INTEGER NOT NULL, id INTEGER NOT NULL, record BLOB NOT NULL, uploaded INTEGER NOT NULL,
    PRIMARY KEY (dev, id)
) WITHOUT ROWID;
CREATE TABLE signed_prekeys (
    dev INTEGER NOT NULL, id INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (dev, id)
) WITHOUT ROWID;
CREATE TABLE sender_keys (
    dev INTEGER NOT NULL, address TEXT NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (dev, address)
) WITHOUT ROWID;
CREATE TABLE sync_keys (
    dev INTEGER NOT NULL, key_id BLOB NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (dev, key_id)
) WITHOUT ROWID;
CREATE TABLE app_versions (
    dev INTEGER NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (dev, name)
) WITHOUT ROWID;
CREATE TABLE mutation_macs (
    dev INTEGER NOT NULL, name TEXT NOT NULL, index_mac BLOB NOT NULL, version INTEGER NOT NULL,
    value_mac BLOB NOT NULL,
    PRIMARY KEY (dev, name, index_mac)
) WITHOUT ROWID;
CREATE TABLE sender_key_devices (
    dev INTEGER NOT NULL, group_jid TEXT NOT NULL, device_jid TEXT NOT NULL, has_key INTEGER NOT NULL,
    PRIMARY KEY (dev, group_jid, device_jid)
) WITHOUT ROWID;
CREATE TABLE lid_map (
    dev INTEGER NOT NULL, lid TEXT NOT NULL, pn TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, source TEXT NOT NULL,
    UNIQUE (dev, lid)
);
CREATE INDEX lid_map_pn ON lid_map(dev, pn);
CREATE TABLE base_keys (
    dev INTEGER NOT NULL, address TEXT NOT NULL, message_id TEXT NOT NULL, base_key BLOB NOT NULL,
    PRIMARY KEY (dev, address, message_id)
) WITHOUT ROWID;
CREATE TABLE device_lists (
    dev INTEGER NOT NULL, user TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (dev, user)
) WITHOUT ROWID;
CREATE TABLE group_meta (
    dev INTEGER NOT NULL, group_jid TEXT NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (dev, group_jid)
) WITHOUT ROWID;
CREATE TABLE tc_tokens (
    dev INTEGER NOT NULL, jid TEXT NOT NULL, token BLOB NOT NULL, token_ts INTEGER NOT NULL,
    sender_ts INTEGER,
    PRIMARY KEY (dev, jid)
) WITHOUT ROWID;
CREATE TABLE sent_messages (
    dev INTEGER NOT NULL, chat TEXT NOT NULL, id TEXT NOT NULL, payload BLOB NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (dev, chat, id)
) WITHOUT ROWID;
CREATE INDEX sent_messages_ts ON sent_messages(dev, ts);
CREATE TABLE pending_inbound (
    dev INTEGER NOT NULL, chat TEXT NOT NULL, sender TEXT NOT NULL, id TEXT NOT NULL,
    message BLOB NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (dev, chat, sender, id)
) WITHOUT ROWID;
CREATE TABLE msg_secrets (
    dev INTEGER NOT NULL, chat TEXT NOT NULL, sender TEXT NOT NULL, msg_id TEXT NOT NULL,
    secret BLOB NOT NULL, expires_at INTEGER NOT NULL, message_ts INTEGER NOT NULL,
    PRIMARY KEY (dev, chat, sender, msg_id)
) WITHOUT ROWID;
