-- The engine reads the members changed after its watermark through this index, not by going
-- through every member of the company.
CREATE INDEX members_updated ON members (company_id, updated_at, id);

-- Counts up with every write of a company's engine inputs that have no ids to watch (taxonomy,
-- engine settings, saved tags, loyalty rules, stores, products), in the writing transaction: with
-- the largest ids and update times of the facts, it tells the engine in one read whether it has
-- anything to catch up on.
CREATE TABLE engine_inputs (
    company_id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
