-- Version 1 -> 2: where each node's HTTP API is reached (forwarded link
-- actions).
-- Released: this file never changes; a new version is a new file.

ALTER TABLE nodes ADD COLUMN url TEXT;
