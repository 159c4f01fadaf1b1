-- rxmember foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql.
-- Conventions: instants are epoch milliseconds (UTC) in BIGINT; calendar dates are TEXT 'YYYY-MM-DD'
-- in the company's local time; money is integer fen; quantities are integer thousandths (milli-units).
-- Every tenant table leads its primary key and unique indexes with company_id. Tables always read by
-- their primary key are WITHOUT ROWID, so the key is the table itself, not a second B-tree. (Not
-- tickets: read by ticket_no, and SQLite's planner would scan the clustered key instead.)

CREATE TABLE group_info (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE companies (
    id BIGINT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    brand TEXT,
    utc_offset_minutes BIGINT NOT NULL DEFAULT 480,
    created_at BIGINT NOT NULL
);

-- Allocates ids per (company, kind) in blocks so imports know ids without a round trip per row.
CREATE TABLE id_counters (
    company_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    next_id BIGINT NOT NULL,
    PRIMARY KEY (company_id, kind)
) WITHOUT ROWID;

CREATE TABLE categories (
    company_id BIGINT NOT NULL,
    code TEXT NOT NULL,
    major_code TEXT NOT NULL,
    name TEXT NOT NULL,
    name_en TEXT NOT NULL,
    PRIMARY KEY (company_id, code)
) WITHOUT ROWID;

CREATE TABLE stores (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    city TEXT,
    address TEXT,
    opened_on TEXT,
    row_hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX stores_code ON stores (company_id, code);

-- Accounts. Group-level accounts have no company.
CREATE TABLE staff (
    id BIGINT PRIMARY KEY,
    company_id BIGINT,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    is_pharmacist INTEGER NOT NULL DEFAULT 0,
    scope_kind TEXT NOT NULL,
    clerk_code TEXT,
    store_id BIGINT,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX staff_clerk_code ON staff (company_id, clerk_code);

CREATE TABLE staff_stores (
    company_id BIGINT NOT NULL,
    staff_id BIGINT NOT NULL,
    store_id BIGINT NOT NULL,
    PRIMARY KEY (company_id, staff_id, store_id)
) WITHOUT ROWID;

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    staff_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (company_id, token_hash);

-- One row per person. Personal data is encrypted (AES-256-GCM); phone and ID number are findable
-- through keyed hashes (HMAC-SHA-256), never stored in clear.
CREATE TABLE members (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    card_no TEXT NOT NULL,
    name_enc BLOB,
    name_hash BLOB,
    phone_enc BLOB,
    phone_hash BLOB,
    gender TEXT NOT NULL DEFAULT 'unknown',
    birthday TEXT,
    id_number_enc BLOB,
    id_number_hash BLOB,
    store_id BIGINT,
    registered_at BIGINT,
    clerk_code TEXT,
    source TEXT NOT NULL DEFAULT 'import',
    referrer_card_no TEXT,
    allergies_enc BLOB,
    chronic_conditions TEXT,
    sms_opt_in INTEGER NOT NULL DEFAULT 1,
    health_consent INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE INDEX members_phone ON members (company_id, phone_hash);
CREATE INDEX members_name ON members (company_id, name_hash);
CREATE INDEX members_card ON members (company_id, card_no);
CREATE INDEX members_clerk ON members (company_id, clerk_code);
CREATE INDEX members_id_number ON members (company_id, id_number_hash);
CREATE INDEX members_store ON members (company_id, store_id);

-- Every card number a member is known by: the primary card and the cards merged into it.
-- row_hash is the hash of the cleaned import row last seen for this card (idempotent re-imports).
CREATE TABLE member_cards (
    company_id BIGINT NOT NULL,
    card_no TEXT NOT NULL,
    member_id BIGINT NOT NULL,
    is_primary INTEGER NOT NULL,
    legacy_points BIGINT,
    row_hash BLOB NOT NULL,
    merged_at BIGINT,
    merge_reason TEXT,
    PRIMARY KEY (company_id, card_no)
) WITHOUT ROWID;
CREATE INDEX member_cards_member ON member_cards (company_id, member_id);

CREATE TABLE products (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    generic_name TEXT,
    spec TEXT,
    manufacturer TEXT,
    brand TEXT,
    category_code TEXT,
    is_prescription INTEGER NOT NULL DEFAULT 0,
    retail_price BIGINT,
    cost_price BIGINT,
    days_per_pack BIGINT,
    ingredients TEXT,
    points_excluded INTEGER NOT NULL DEFAULT 0,
    row_hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX products_code ON products (company_id, code);

-- A sales ticket. member_id is NULL for non-member tickets and for cards not (yet) known;
-- card_no keeps the raw card so a later member import links the ticket.
CREATE TABLE tickets (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    ticket_no TEXT NOT NULL,
    store_id BIGINT NOT NULL,
    member_id BIGINT,
    card_no TEXT,
    clerk_code TEXT,
    sold_at BIGINT NOT NULL,
    line_count BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    discount BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX tickets_no ON tickets (company_id, ticket_no);
-- Member tickets only; the card index covers just the tickets still waiting for their member.
CREATE INDEX tickets_member ON tickets (company_id, member_id, sold_at) WHERE member_id IS NOT NULL;
CREATE INDEX tickets_card ON tickets (company_id, card_no) WHERE member_id IS NULL AND card_no IS NOT NULL;
CREATE INDEX tickets_sold ON tickets (company_id, sold_at);

CREATE TABLE ticket_lines (
    company_id BIGINT NOT NULL,
    ticket_id BIGINT NOT NULL,
    line_no BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity_milli BIGINT NOT NULL,
    unit_price BIGINT,
    amount BIGINT NOT NULL,
    discount BIGINT NOT NULL,
    cost BIGINT NOT NULL,
    line_hash BLOB NOT NULL,
    PRIMARY KEY (company_id, ticket_id, line_no)
) WITHOUT ROWID;

CREATE TABLE returns (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    return_no TEXT NOT NULL,
    ticket_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    returned_at BIGINT NOT NULL,
    quantity_milli BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    row_hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX returns_key ON returns (company_id, return_no, ticket_id, product_id);
CREATE INDEX returns_ticket ON returns (company_id, ticket_id);

CREATE TABLE health_checks (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    store_id BIGINT,
    checked_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    value1_milli BIGINT,
    value2_milli BIGINT,
    unit TEXT,
    abnormal INTEGER NOT NULL,
    row_hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX health_checks_key ON health_checks (company_id, member_id, kind, checked_at);

-- Who saw or exported what: every reveal of personal data and every import/export.
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    company_id BIGINT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT,
    detail TEXT
);

CREATE TABLE import_runs (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    summary TEXT,
    PRIMARY KEY (company_id, id)
);
