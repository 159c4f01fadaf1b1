-- Member-intelligence engine: per-company settings, saved tags, and this database's identity.
-- Keep in step with ../postgres/0002_engine.sql.

-- A random token fixed when the database is created: engine snapshots on disk carry it, so a
-- snapshot is never applied to another database (a recreated demo, a restored backup elsewhere).
CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL
);
INSERT INTO instance (id, token) VALUES (1, lower(hex(randomblob(16))));

-- Engine settings of a company as a JSON document (RFM thresholds, activity levels, classes, drug groups).
CREATE TABLE engine_settings (
    company_id BIGINT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Saved tags: an audience expression under a name, or an uploaded list of members.
CREATE TABLE saved_tags (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    name TEXT NOT NULL,
    expression TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX saved_tags_name ON saved_tags (company_id, name);

CREATE TABLE saved_tag_members (
    company_id BIGINT NOT NULL,
    tag_id BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    PRIMARY KEY (company_id, tag_id, member_id)
) WITHOUT ROWID;
