-- Loyalty: rules, the points ledger, tiers, coupons, and the POS's idempotency records.
-- Keep in step with ../postgres/0003_loyalty.sql.

-- A company's loyalty rules (points, tiers, member days) as a TOML document.
CREATE TABLE loyalty_rules (
    company_id BIGINT PRIMARY KEY,
    rules TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A member's points: the balance always equals the sum of the member's ledger entries (both are
-- written in one transaction); debt is what returns still owe under the clawback policy.
CREATE TABLE points_accounts (
    company_id BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    balance BIGINT NOT NULL,
    debt BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, member_id)
);

-- The append-only ledger. (kind, cause) is unique: a ticket earns once, a return takes back once,
-- a lot expires once. Positive entries are lots: `remaining` is what is still unspent (the only
-- column that changes after insert), `expires_on` the last valid day.
CREATE TABLE points_ledger (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    points BIGINT NOT NULL,
    cause TEXT NOT NULL,
    at BIGINT NOT NULL,
    on_date TEXT NOT NULL,
    expires_on TEXT,
    remaining BIGINT NOT NULL,
    detail TEXT,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX points_ledger_cause ON points_ledger (company_id, kind, cause);
CREATE INDEX points_ledger_member ON points_ledger (company_id, member_id, id);
CREATE INDEX points_ledger_lots ON points_ledger (company_id, expires_on) WHERE remaining > 0;

-- Where the accrual of imported tickets and returns has got to, per company.
CREATE TABLE loyalty_progress (
    company_id BIGINT PRIMARY KEY,
    last_ticket_id BIGINT NOT NULL,
    last_return_id BIGINT NOT NULL
);

-- A member's current tier, and every change with its reason. `cause` makes a change idempotent
-- (a ticket upgrades once; a yearly review runs once per member and year).
CREATE TABLE member_tiers (
    company_id BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    tier TEXT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (company_id, member_id)
);
CREATE TABLE tier_history (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    from_tier TEXT,
    to_tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    cause TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX tier_history_cause ON tier_history (company_id, member_id, cause);

-- Coupon templates (优惠券设置). status: draft → enabled (with its stores) → disabled (停用).
CREATE TABLE coupon_templates (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    face_value BIGINT NOT NULL,
    percent BIGINT NOT NULL,
    gift_product TEXT,
    min_spend BIGINT NOT NULL,
    validity TEXT NOT NULL,
    products TEXT NOT NULL,
    categories TEXT NOT NULL,
    stackable INTEGER NOT NULL,
    per_member_limit BIGINT,
    total_quantity BIGINT,
    issued_count BIGINT NOT NULL,
    issue_event TEXT,
    status TEXT NOT NULL,
    all_stores INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX coupon_templates_code ON coupon_templates (company_id, code);

CREATE TABLE coupon_template_stores (
    company_id BIGINT NOT NULL,
    template_id BIGINT NOT NULL,
    store_id BIGINT NOT NULL,
    PRIMARY KEY (company_id, template_id, store_id)
);

-- Coupons issued. `issue_cause` makes issuance idempotent (one birthday coupon per member and year,
-- one per member of a campaign, ...). status: issued, redeemed, sharing (offered to a friend), void.
CREATE TABLE coupons (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    template_id BIGINT NOT NULL,
    code TEXT NOT NULL,
    member_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    issue_cause TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT NOT NULL,
    shared_from_member_id BIGINT,
    redeemed_at BIGINT,
    PRIMARY KEY (company_id, id)
);
CREATE UNIQUE INDEX coupons_code ON coupons (company_id, code);
CREATE UNIQUE INDEX coupons_issue ON coupons (company_id, template_id, issue_cause);
CREATE INDEX coupons_member ON coupons (company_id, member_id, status);

-- One row per redeemed coupon: the primary key is what makes redemption exactly-once.
CREATE TABLE coupon_redemptions (
    company_id BIGINT NOT NULL,
    coupon_id BIGINT NOT NULL,
    ticket_no TEXT NOT NULL,
    store_id BIGINT NOT NULL,
    discount BIGINT NOT NULL,
    redeemed_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, coupon_id)
);
CREATE INDEX coupon_redemptions_ticket ON coupon_redemptions (company_id, ticket_no);

-- Sharing a coupon to a friend (分享): pending → succeeded (the friend claimed it) or failed
-- (declined, expired unclaimed, or the owner took it back).
CREATE TABLE coupon_shares (
    company_id BIGINT NOT NULL,
    id BIGINT NOT NULL,
    coupon_id BIGINT NOT NULL,
    template_id BIGINT NOT NULL,
    from_member_id BIGINT NOT NULL,
    to_member_id BIGINT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    PRIMARY KEY (company_id, id)
);
CREATE INDEX coupon_shares_template ON coupon_shares (company_id, template_id, status);
CREATE UNIQUE INDEX coupon_shares_pending ON coupon_shares (company_id, coupon_id) WHERE status = 'pending';

-- What the POS committed: a ticket number is committed once; a retry with the same request gets the
-- same answer, a different request under the same number is refused.
CREATE TABLE pos_commits (
    company_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    number TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, kind, number)
);
