-- Version 0 -> 1, first half: the tables from before versions existed
-- (rows keyed by the org id) are renamed out of the way; v1.sql then makes
-- the new ones and v0_copy.sql fills them.
-- Released: this file never changes; a new version is a new file.

DROP INDEX IF EXISTS messages_idem;
DROP INDEX IF EXISTS messages_org_status;
DROP INDEX IF EXISTS messages_wa_id;
DROP INDEX IF EXISTS events_org;
ALTER TABLE orgs RENAME TO orgs_v0;
ALTER TABLE messages RENAME TO messages_v0;
ALTER TABLE events RENAME TO events_v0;
ALTER TABLE inbound RENAME TO inbound_v0;
