-- PostgreSQL, version 4 -> 5: deliveries by event, so deleting an old event (retention)
-- finds its deliveries without a scan.
-- Released: this file never changes; a new version is a new file.

CREATE INDEX deliveries_event ON deliveries(event);
