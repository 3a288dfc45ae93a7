-- coldaisle store, version 2: ingest ids, so that a collector refreshing its view reads only
-- the rows written since its last refresh (see store-pg/src/changes.rs).
-- One sequence numbers the row versions of both tables: an insert, or an update that changes
-- the value, takes the next id. Adding the columns with a volatile default numbers the rows
-- already there (the tables are rewritten once).
CREATE SEQUENCE ingest_ids AS bigint;
ALTER TABLE records ADD COLUMN ingest_id bigint NOT NULL DEFAULT nextval('ingest_ids');
ALTER TABLE kv ADD COLUMN ingest_id bigint NOT NULL DEFAULT nextval('ingest_ids');
CREATE INDEX records_by_ingest_id ON records (ingest_id);
CREATE INDEX kv_by_ingest_id ON kv (ingest_id);
