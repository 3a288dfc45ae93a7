-- coldaisle store, version 1.
-- The collector's records, keyed by (agent, collector seq). `agent` sorts bytewise (COLLATE "C")
-- so the primary key's order is the KvStore key order: agent id, 0x00, seq big-endian.
CREATE TABLE records (
    agent text COLLATE "C" NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 0),
    value bytea NOT NULL,
    PRIMARY KEY (agent, seq)
);

-- Every other tree (agent ledgers, sites, actions, silences, notify queue, ...): bytea keys
-- sort bytewise, as KvStore requires.
CREATE TABLE kv (
    tree text COLLATE "C" NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tree, key)
);
