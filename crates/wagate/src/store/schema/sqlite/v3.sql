-- Version 2 -> 3: WhatsApp's sending limits. A queued message may be held
-- (held_reason, retry_at_ms); contacts remember per org and phone whether the
-- number is on WhatsApp and when it first wrote, was tried and accepted
-- (filled from what the tables already know); account_limits keeps the
-- reach-out timelock and message capping last announced for the number.
-- Released: this file never changes; a new version is a new file.

ALTER TABLE messages ADD COLUMN held_reason TEXT;
ALTER TABLE messages ADD COLUMN retry_at_ms INTEGER;
CREATE INDEX messages_held ON messages(inc, retry_at_ms)
    WHERE status = 'queued' AND retry_at_ms IS NOT NULL;
CREATE TABLE contacts (
    inc INTEGER NOT NULL REFERENCES orgs(inc) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    on_whatsapp INTEGER,
    jid TEXT,
    checked_ms INTEGER,
    first_in_ms INTEGER,
    first_try_ms INTEGER,
    first_ok_ms INTEGER,
    PRIMARY KEY (inc, phone)
) WITHOUT ROWID;
CREATE INDEX contacts_reach ON contacts(inc, first_try_ms) WHERE first_try_ms IS NOT NULL;
INSERT INTO contacts (inc, phone, first_in_ms)
    SELECT inc, sender, MIN(received_ms) FROM inbound GROUP BY inc, sender;
INSERT INTO contacts (inc, phone, first_try_ms, first_ok_ms)
    SELECT inc, phone, MIN(COALESCE(handed_ms, updated_ms)),
           MIN(CASE WHEN status IN ('sent', 'delivered', 'read') THEN updated_ms END)
    FROM messages WHERE attempts > 0 OR status IN ('sent', 'delivered', 'read')
    GROUP BY inc, phone
    ON CONFLICT(inc, phone) DO UPDATE SET
        first_try_ms = excluded.first_try_ms, first_ok_ms = excluded.first_ok_ms;
CREATE TABLE account_limits (
    inc INTEGER PRIMARY KEY REFERENCES orgs(inc) ON DELETE CASCADE,
    reachout_until_ms INTEGER,
    reachout_type TEXT,
    cap_used INTEGER,
    cap_total INTEGER,
    cap_cycle_end_ms INTEGER,
    cap_status TEXT,
    updated_ms INTEGER NOT NULL
);
