//! Members: one row per person, every card number they are known by in `member_cards`.
//!
//! Import rules (DATA.md "members"): a known card with the same cleaned content is unchanged; a known
//! card with new content updates the person (new non-empty values win; nothing is blanked). An unknown
//! card whose phone belongs to a member of the company is the same person: the card is merged in as an
//! alias and only fills the person's empty fields (seed 000: 会员去重合并). Otherwise a new member.
//! Tickets that named a card before the member arrived are linked when it does.

use crate::crypto::Crypto;
use crate::outcome::{Issue, RowOutcome, RowResult};
use crate::{Backend, Result, Store, StoreError, counters, db::list_placeholders, db::values_placeholders, rowhash};
use rxmember_core::member::{Gender, Member, MemberInput, MemberStatus};
use rxmember_core::org::{DataScope, Scope};
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, MemberId, StoreId, mask};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use std::collections::HashMap;

/// Encrypted, ready-to-store form of a member's fields. `None` means "no information".
#[derive(Clone, Default)]
struct Fields {
    name_enc: Option<Vec<u8>>,
    name_hash: Option<Vec<u8>>,
    phone_enc: Option<Vec<u8>>,
    phone_hash: Option<Vec<u8>>,
    gender: Option<&'static str>,
    birthday: Option<String>,
    id_number_enc: Option<Vec<u8>>,
    id_number_hash: Option<Vec<u8>>,
    store_id: Option<i64>,
    registered_at: Option<i64>,
    clerk_code: Option<String>,
    source: Option<&'static str>,
    referrer_card_no: Option<String>,
    allergies_enc: Option<Vec<u8>>,
    chronic_conditions: Option<String>,
    sms_opt_in: bool,
}

impl Fields {
    fn from_input(c: &Crypto, company: CompanyId, m: &MemberInput, store_id: Option<StoreId>) -> Fields {
        let enc = |field: &str, v: &Option<String>| v.as_ref().map(|s| c.encrypt(company, field, s));
        let idx = |field: &str, v: &Option<String>| v.as_ref().map(|s| c.blind_index(company, field, s));
        let allergies = (!m.allergies.is_empty()).then(|| m.allergies.join(";"));
        Fields {
            name_enc: enc("name", &m.name),
            name_hash: idx("name", &m.name),
            phone_enc: enc("phone", &m.phone),
            phone_hash: idx("phone", &m.phone),
            gender: (m.gender != Gender::Unknown).then(|| m.gender.as_str()),
            birthday: m.birthday.map(|d| d.to_string()),
            id_number_enc: enc("id_number", &m.id_number),
            id_number_hash: idx("id_number", &m.id_number),
            store_id: store_id.map(|s| s.0),
            registered_at: m.registered_at,
            clerk_code: m.clerk_code.clone(),
            source: Some(m.source.as_str()),
            referrer_card_no: m.referrer_card_no.clone(),
            allergies_enc: enc("allergies", &allergies),
            chronic_conditions: (!m.chronic_conditions.is_empty()).then(|| m.chronic_conditions.join(";")),
            sms_opt_in: m.sms_opt_in,
        }
    }

    /// In-memory version of the SQL merge: `new_wins` for the card's own update, else fill-only.
    fn merge(&mut self, other: Fields, new_wins: bool) {
        fn pick<T>(old: &mut Option<T>, new: Option<T>, new_wins: bool) {
            if new.is_some() && (new_wins || old.is_none()) {
                *old = new;
            }
        }
        pick(&mut self.name_enc, other.name_enc, new_wins);
        pick(&mut self.name_hash, other.name_hash, new_wins);
        pick(&mut self.phone_enc, other.phone_enc, new_wins);
        pick(&mut self.phone_hash, other.phone_hash, new_wins);
        pick(&mut self.gender, other.gender, new_wins);
        pick(&mut self.birthday, other.birthday, new_wins);
        pick(&mut self.id_number_enc, other.id_number_enc, new_wins);
        pick(&mut self.id_number_hash, other.id_number_hash, new_wins);
        pick(&mut self.store_id, other.store_id, new_wins);
        pick(&mut self.registered_at, other.registered_at, new_wins);
        pick(&mut self.clerk_code, other.clerk_code, new_wins);
        pick(&mut self.source, other.source, new_wins);
        pick(&mut self.referrer_card_no, other.referrer_card_no, new_wins);
        pick(&mut self.allergies_enc, other.allergies_enc, new_wins);
        pick(&mut self.chronic_conditions, other.chronic_conditions, new_wins);
        if new_wins {
            self.sms_opt_in = other.sms_opt_in;
        }
    }
}

const MERGED_COLUMNS: [&str; 15] = [
    "name_enc",
    "name_hash",
    "phone_enc",
    "phone_hash",
    "gender",
    "birthday",
    "id_number_enc",
    "id_number_hash",
    "store_id",
    "registered_at",
    "clerk_code",
    "source",
    "referrer_card_no",
    "allergies_enc",
    "chronic_conditions",
];

fn update_sql(new_wins: bool) -> String {
    let mut sets: Vec<String> = MERGED_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = i + 3;
            if *c == "gender" {
                if new_wins {
                    format!("gender = COALESCE(${p}, gender)")
                } else {
                    format!("gender = CASE WHEN gender = 'unknown' THEN COALESCE(${p}, gender) ELSE gender END")
                }
            } else if new_wins {
                format!("{c} = COALESCE(${p}, {c})")
            } else {
                format!("{c} = COALESCE({c}, ${p})")
            }
        })
        .collect();
    let n = MERGED_COLUMNS.len() + 3;
    if new_wins {
        sets.push(format!("sms_opt_in = ${n}"));
    } else {
        sets.push(format!("sms_opt_in = sms_opt_in AND ${n}"));
    }
    sets.push(format!("updated_at = ${}", n + 1));
    format!("UPDATE members SET {} WHERE company_id = $1 AND id = $2", sets.join(", "))
}

fn hash(m: &MemberInput) -> Vec<u8> {
    let b = m.birthday.map(|d| d.to_string());
    let r = m.registered_at.map(|v| v.to_string());
    let p = m.points.map(|v| v.to_string());
    rowhash::of(&[
        &m.card_no,
        rowhash::opt(&m.name),
        rowhash::opt(&m.phone),
        m.gender.as_str(),
        rowhash::opt(&b),
        rowhash::opt(&m.id_number),
        rowhash::opt(&m.store_code),
        rowhash::opt(&r),
        rowhash::opt(&m.clerk_code),
        m.source.as_str(),
        rowhash::opt(&m.referrer_card_no),
        &m.allergies.join(";"),
        &m.chronic_conditions.join(";"),
        if m.sms_opt_in { "1" } else { "0" },
        rowhash::opt(&p),
    ])
}

struct Card {
    member_id: i64,
    is_primary: bool,
    row_hash: Vec<u8>,
}

struct NewCard {
    card_no: String,
    member_id: i64,
    is_primary: bool,
    legacy_points: Option<i64>,
    row_hash: Vec<u8>,
    merge_reason: Option<&'static str>,
}

impl Store {
    /// Imports a batch of member rows (one transaction). `stores` resolves store codes.
    pub async fn upsert_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        stores: &HashMap<String, StoreId>,
        rows: &[MemberInput],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(company)?;
        let c = company.0;
        let mut tx = self.begin_write().await?;

        // What the database already knows: the cards, and the people behind the phones.
        let mut cards: HashMap<String, Card> = HashMap::new();
        let card_nos: Vec<_> = rows.iter().map(|r| r.card_no.clone()).collect();
        for r in crate::db::select_in(&mut tx, self.backend, "SELECT card_no, member_id, is_primary, row_hash FROM member_cards WHERE company_id = {company} AND card_no IN ({keys})", c, &card_nos).await? {
                cards.insert(
                    r.try_get("card_no")?,
                    Card {
                        member_id: r.try_get("member_id")?,
                        is_primary: crate::db::flag(&r, "is_primary")?,
                        row_hash: r.try_get("row_hash")?,
                    },
                );
        }
        let phone_hashes: Vec<Vec<u8>> = rows
            .iter()
            .filter_map(|r| r.phone.as_ref().map(|p| self.crypto.blind_index(company, "phone", p)))
            .collect();
        // phone hash → (member id, primary card)
        let mut phones: HashMap<Vec<u8>, (i64, String)> = HashMap::new();
        for r in crate::db::select_in(&mut tx, self.backend, "SELECT phone_hash, id, card_no FROM members WHERE company_id = {company} AND status = 'active' AND phone_hash IN ({keys})", c, &phone_hashes).await? {
                phones.insert(r.try_get("phone_hash")?, (r.try_get("id")?, r.try_get("card_no")?));
        }

        let unknown = rows.iter().filter(|r| !cards.contains_key(&r.card_no)).count() as i64;
        let mut next_id = counters::allocate(&mut tx, c, "member", unknown.max(1)).await?;
        let now = now_ms();
        let sql_new_wins = update_sql(true);
        let sql_fill = update_sql(false);

        let mut new_members: Vec<(i64, String, Fields)> = Vec::new();
        let mut new_member_index: HashMap<i64, usize> = HashMap::new();
        let mut new_cards: Vec<NewCard> = Vec::new();
        let mut out = Vec::with_capacity(rows.len());

        for r in rows {
            let mut warnings = Vec::new();
            let store_id = match &r.store_code {
                Some(code) => match stores.get(code) {
                    Some(s) => Some(*s),
                    None => {
                        warnings.push(Issue::new(
                            "store_code",
                            code,
                            "unknown_store",
                            format!("办卡门店“{code}”不存在，已留空"),
                        ));
                        None
                    }
                },
                None => None,
            };
            let h = hash(r);
            let fields = Fields::from_input(&self.crypto, company, r, store_id);

            if let Some(card) = cards.get(&r.card_no) {
                if card.row_hash == h {
                    out.push(RowResult { outcome: RowOutcome::Unchanged, warnings });
                    continue;
                }
                let (member_id, new_wins) = (card.member_id, card.is_primary);
                if let Some(ph) = &fields.phone_hash
                    && let Some((other, other_card)) = phones.get(ph)
                    && *other != member_id
                {
                    warnings.push(Issue::new(
                        "phone",
                        &mask::phone(r.phone.as_deref().unwrap_or_default()),
                        "phone_shared",
                        format!("手机号与会员卡“{other_card}”相同；两张已有会员卡不会自动合并，请人工核对"),
                    ));
                }
                if let Some(ph) = &fields.phone_hash {
                    phones.entry(ph.clone()).or_insert((member_id, r.card_no.clone()));
                }
                if let Some(&i) = new_member_index.get(&member_id) {
                    new_members[i].2.merge(fields, new_wins);
                    if let Some(nc) = new_cards.iter_mut().find(|nc| nc.card_no == r.card_no) {
                        nc.row_hash = h.clone();
                        nc.legacy_points = r.points.or(nc.legacy_points);
                    }
                } else {
                    bind_fields(
                        sqlx::query(AssertSqlSafe(if new_wins { sql_new_wins.clone() } else { sql_fill.clone() })),
                        c,
                        member_id,
                        &fields,
                        now,
                    )
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE member_cards SET row_hash = $3, legacy_points = COALESCE($4, legacy_points) WHERE company_id = $1 AND card_no = $2")
                        .bind(c)
                        .bind(r.card_no.as_str())
                        .bind(h.clone())
                        .bind(r.points)
                        .execute(&mut *tx)
                        .await?;
                }
                cards.insert(r.card_no.clone(), Card { member_id, is_primary: new_wins, row_hash: h });
                out.push(RowResult { outcome: RowOutcome::Updated, warnings });
                continue;
            }

            // An unknown card: the same person as an existing phone, or somebody new.
            let same_person = fields.phone_hash.as_ref().and_then(|ph| phones.get(ph)).cloned();
            let (member_id, outcome, is_primary) = match same_person {
                Some((member_id, primary_card)) => {
                    if let Some(&i) = new_member_index.get(&member_id) {
                        new_members[i].2.merge(fields, false);
                    } else {
                        bind_fields(sqlx::query(AssertSqlSafe(sql_fill.clone())), c, member_id, &fields, now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    (member_id, RowOutcome::Merged { into_card: primary_card }, false)
                }
                None => {
                    let id = next_id;
                    next_id += 1;
                    if let Some(ph) = &fields.phone_hash {
                        phones.insert(ph.clone(), (id, r.card_no.clone()));
                    }
                    new_member_index.insert(id, new_members.len());
                    new_members.push((id, r.card_no.clone(), fields));
                    (id, RowOutcome::Inserted, true)
                }
            };
            new_cards.push(NewCard {
                card_no: r.card_no.clone(),
                member_id,
                is_primary,
                legacy_points: r.points,
                row_hash: h.clone(),
                merge_reason: (!is_primary).then_some("same_phone"),
            });
            cards.insert(r.card_no.clone(), Card { member_id, is_primary, row_hash: h });
            out.push(RowResult { outcome, warnings });
        }

        insert_members(&mut tx, self.backend, c, &new_members, now).await?;
        insert_cards(&mut tx, self.backend, c, &new_cards, now).await?;
        // Tickets that arrived before their member: link them now.
        for chunk in new_cards.chunks(1000) {
            let sql = format!(
                "UPDATE tickets SET member_id = (SELECT mc.member_id FROM member_cards mc WHERE mc.company_id = tickets.company_id AND mc.card_no = tickets.card_no) \
                 WHERE company_id = {} AND member_id IS NULL AND card_no IN ({})",
                crate::db::placeholder(self.backend, 1),
                list_placeholders(self.backend, 2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(c);
            for nc in chunk {
                q = q.bind(nc.card_no.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

fn bind_fields<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    company: i64,
    id: i64,
    f: &Fields,
    now: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q.bind(company)
        .bind(id)
        .bind(f.name_enc.clone())
        .bind(f.name_hash.clone())
        .bind(f.phone_enc.clone())
        .bind(f.phone_hash.clone())
        .bind(f.gender)
        .bind(f.birthday.clone())
        .bind(f.id_number_enc.clone())
        .bind(f.id_number_hash.clone())
        .bind(f.store_id)
        .bind(f.registered_at)
        .bind(f.clerk_code.clone())
        .bind(f.source)
        .bind(f.referrer_card_no.clone())
        .bind(f.allergies_enc.clone())
        .bind(f.chronic_conditions.clone())
        .bind(f.sms_opt_in)
        .bind(now)
}

const MEMBER_COLS: usize = 22;

async fn insert_members(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    c: i64,
    rows: &[(i64, String, Fields)],
    now: i64,
) -> Result<()> {
    for chunk in rows.chunks(backend.rows_per_insert(MEMBER_COLS)) {
        let sql = format!(
            "INSERT INTO members (company_id, id, card_no, name_enc, name_hash, phone_enc, phone_hash, gender, birthday, id_number_enc, \
             id_number_hash, store_id, registered_at, clerk_code, source, referrer_card_no, allergies_enc, chronic_conditions, sms_opt_in, \
             status, created_at, updated_at) VALUES {}",
            values_placeholders(backend, chunk.len(), MEMBER_COLS)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, card, f) in chunk {
            q = q
                .bind(c)
                .bind(*id)
                .bind(card.as_str())
                .bind(f.name_enc.clone())
                .bind(f.name_hash.clone())
                .bind(f.phone_enc.clone())
                .bind(f.phone_hash.clone())
                .bind(f.gender.unwrap_or("unknown"))
                .bind(f.birthday.clone())
                .bind(f.id_number_enc.clone())
                .bind(f.id_number_hash.clone())
                .bind(f.store_id)
                .bind(f.registered_at)
                .bind(f.clerk_code.clone())
                .bind(f.source.unwrap_or("import"))
                .bind(f.referrer_card_no.clone())
                .bind(f.allergies_enc.clone())
                .bind(f.chronic_conditions.clone())
                .bind(f.sms_opt_in)
                .bind("active")
                .bind(now)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_cards(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    c: i64,
    rows: &[NewCard],
    now: i64,
) -> Result<()> {
    for chunk in rows.chunks(backend.rows_per_insert(8)) {
        let sql = format!(
            "INSERT INTO member_cards (company_id, card_no, member_id, is_primary, legacy_points, row_hash, merged_at, merge_reason) VALUES {}",
            values_placeholders(backend, chunk.len(), 8)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for nc in chunk {
            q = q
                .bind(c)
                .bind(nc.card_no.as_str())
                .bind(nc.member_id)
                .bind(nc.is_primary)
                .bind(nc.legacy_points)
                .bind(nc.row_hash.clone())
                .bind((!nc.is_primary).then_some(now))
                .bind(nc.merge_reason);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A member search: one company (or all the caller may see), an optional text (card number, phone or
/// exact name), an optional store; paged.
#[derive(Debug, Clone, Default)]
pub struct MemberQuery {
    pub company: Option<CompanyId>,
    pub q: Option<String>,
    pub store: Option<StoreId>,
    pub limit: i64,
    pub offset: i64,
}

/// One page of members.
#[derive(Debug, Clone, Serialize)]
pub struct MemberPage {
    pub total: i64,
    pub members: Vec<Member>,
}

pub(crate) enum Bind {
    I(i64),
    S(String),
    B(Vec<u8>),
}

/// The WHERE clause of the caller's data scope over `members` (aliased `m`).
pub(crate) fn scope_filter(scope: &Scope, asked: Option<CompanyId>, binds: &mut Vec<Bind>) -> Result<String> {
    let mut p = |b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    Ok(match &scope.data {
        DataScope::All => match asked {
            Some(c) => format!("m.company_id = {}", p(Bind::I(c.0))),
            None => "1 = 1".to_string(),
        },
        DataScope::Company { company } => {
            if asked.is_some_and(|a| a != *company) {
                return Err(StoreError::AccessDenied);
            }
            format!("m.company_id = {}", p(Bind::I(company.0)))
        }
        DataScope::Stores { company, stores } => {
            if asked.is_some_and(|a| a != *company) {
                return Err(StoreError::AccessDenied);
            }
            let c = p(Bind::I(company.0));
            if stores.is_empty() {
                format!("m.company_id = {c} AND 1 = 0")
            } else {
                let list: Vec<String> = stores.iter().map(|s| p(Bind::I(s.0))).collect();
                format!("m.company_id = {c} AND m.store_id IN ({})", list.join(","))
            }
        }
        DataScope::OwnMembers { company, clerk_code, .. } => {
            if asked.is_some_and(|a| a != *company) {
                return Err(StoreError::AccessDenied);
            }
            let c = p(Bind::I(company.0));
            format!("m.company_id = {c} AND m.clerk_code = {}", p(Bind::S(clerk_code.clone())))
        }
    })
}

pub(crate) fn apply<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    binds: &[Bind],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    for b in binds {
        q = match b {
            Bind::I(v) => q.bind(*v),
            Bind::S(v) => q.bind(v.clone()),
            Bind::B(v) => q.bind(v.clone()),
        };
    }
    q
}

impl Store {
    fn member_from_row(&self, r: &AnyRow, reveal: bool) -> Result<Member> {
        let company = CompanyId(r.try_get("company_id")?);
        let dec = |field: &str, col: &str| -> Result<Option<String>> {
            let v: Option<Vec<u8>> = r.try_get(col)?;
            v.map(|b| self.crypto.decrypt(company, field, &b)).transpose()
        };
        let name = dec("name", "name_enc")?;
        let phone = dec("phone", "phone_enc")?;
        let allergies = dec("allergies", "allergies_enc")?;
        let chronic: Option<String> = r.try_get("chronic_conditions")?;
        let birthday: Option<String> = r.try_get("birthday")?;
        let split = |s: Option<String>| s.map(|s| s.split(';').map(String::from).collect()).unwrap_or_default();
        Ok(Member {
            company_id: company,
            id: MemberId(r.try_get("id")?),
            card_no: r.try_get("card_no")?,
            other_cards: vec![],
            name: if reveal { name } else { name.map(|n| mask::name(&n)) },
            phone: if reveal { phone } else { phone.map(|p| mask::phone(&p)) },
            gender: Gender::parse(&r.try_get::<String, _>("gender")?),
            birthday: birthday.and_then(|b| b.parse().ok()),
            store_id: r.try_get::<Option<i64>, _>("store_id")?.map(StoreId),
            registered_at: r.try_get("registered_at")?,
            clerk_code: r.try_get("clerk_code")?,
            source: r.try_get("source")?,
            referrer_card_no: r.try_get("referrer_card_no")?,
            allergies: if reveal { split(allergies) } else { vec![] },
            chronic_conditions: split(chronic),
            sms_opt_in: crate::db::flag(r, "sms_opt_in")?,
            status: MemberStatus::parse(&r.try_get::<String, _>("status")?),
        })
    }

    /// Searches members within the caller's scope. Names and phones are masked unless the role may
    /// see them; an unmasked page is audited.
    pub async fn search_members(&self, scope: &Scope, query: &MemberQuery) -> Result<MemberPage> {
        let mut binds = Vec::new();
        let mut filter = scope_filter(scope, query.company, &mut binds)?;
        if let Some(s) = query.store {
            binds.push(Bind::I(s.0));
            filter.push_str(&format!(" AND m.store_id = ${}", binds.len()));
        }
        if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            // A phone, a card number, or a name: each compared exactly (phones and names through their
            // blind index, per company).
            let companies: Vec<CompanyId> = match (scope.data.company(), query.company) {
                (Some(c), _) | (None, Some(c)) => vec![c],
                (None, None) => self.companies(scope).await?.into_iter().map(|c| c.id).collect(),
            };
            let mut ors = Vec::new();
            binds.push(Bind::S(q.to_string()));
            ors.push(format!("m.id IN (SELECT mc.member_id FROM member_cards mc WHERE mc.company_id = m.company_id AND mc.card_no = ${})", binds.len()));
            let phone = rxmember_core::clean::phone(q).ok();
            for c in companies {
                if let Some(p) = &phone {
                    binds.push(Bind::B(self.crypto.blind_index(c, "phone", p)));
                    ors.push(format!("m.phone_hash = ${}", binds.len()));
                }
                binds.push(Bind::B(self.crypto.blind_index(c, "name", q)));
                ors.push(format!("m.name_hash = ${}", binds.len()));
            }
            filter.push_str(&format!(" AND ({})", ors.join(" OR ")));
        }
        let total: i64 =
            apply(sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM members m WHERE {filter}"))), &binds)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
        let n = binds.len();
        binds.push(Bind::I(query.limit.clamp(1, 500)));
        binds.push(Bind::I(query.offset.max(0)));
        let sql = format!(
            "SELECT m.* FROM members m WHERE {filter} ORDER BY m.company_id, m.id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = apply(sqlx::query(AssertSqlSafe(sql)), &binds).fetch_all(&self.pool).await?;
        let reveal = scope.role.sees_personal_data();
        let members = rows.iter().map(|r| self.member_from_row(r, reveal)).collect::<Result<Vec<_>>>()?;
        if reveal && !members.is_empty() {
            self.audit(
                scope,
                query.company.or(scope.data.company()),
                "member.list",
                query.q.as_deref(),
                Some(&format!("{} members revealed", members.len())),
            )
            .await?;
        }
        Ok(MemberPage { total, members })
    }

    /// One member by id, with all cards, if in the caller's scope. Unmasked reveals are audited.
    pub async fn member(&self, scope: &Scope, company: CompanyId, id: MemberId) -> Result<Member> {
        let mut binds = Vec::new();
        let filter = scope_filter(scope, Some(company), &mut binds)?;
        binds.push(Bind::I(id.0));
        let sql = format!("SELECT m.* FROM members m WHERE {filter} AND m.id = ${}", binds.len());
        let row = apply(sqlx::query(AssertSqlSafe(sql)), &binds)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("member {id}") })?;
        let reveal = scope.role.sees_personal_data();
        let mut m = self.member_from_row(&row, reveal)?;
        m.other_cards = sqlx::query_scalar(
            "SELECT card_no FROM member_cards WHERE company_id = $1 AND member_id = $2 AND is_primary = $3 ORDER BY card_no",
        )
        .bind(company.0)
        .bind(id.0)
        .bind(false)
        .fetch_all(&self.pool)
        .await?;
        if reveal {
            self.audit(scope, Some(company), "member.view", Some(&m.card_no), None).await?;
        }
        Ok(m)
    }

    /// Checks that member `id` exists and is in the caller's data scope (no personal data read, no
    /// audit entry): for loyalty operations on a member.
    pub async fn require_member(&self, scope: &Scope, company: CompanyId, id: MemberId) -> Result<()> {
        let mut binds = Vec::new();
        let filter = scope_filter(scope, Some(company), &mut binds)?;
        binds.push(Bind::I(id.0));
        let sql = format!("SELECT m.id FROM members m WHERE {filter} AND m.id = ${}", binds.len());
        match apply(sqlx::query(AssertSqlSafe(sql)), &binds).fetch_optional(&self.pool).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound { what: format!("member {id}") }),
        }
    }

    /// The member holding `card_no` (primary or merged card).
    pub async fn member_by_card(&self, scope: &Scope, company: CompanyId, card_no: &str) -> Result<Member> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT member_id FROM member_cards WHERE company_id = $1 AND card_no = $2")
                .bind(company.0)
                .bind(card_no)
                .fetch_optional(&self.pool)
                .await?;
        match id {
            Some(id) => self.member(scope, company, MemberId(id)).await,
            None => Err(StoreError::NotFound { what: format!("card {card_no}") }),
        }
    }

    /// Counts for a company: (people, cards); cards exceed people by the merged duplicates.
    pub async fn member_counts(&self, scope: &Scope, company: CompanyId) -> Result<(i64, i64)> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE company_id = $1")
            .bind(company.0)
            .fetch_one(&self.pool)
            .await?;
        let cards: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM member_cards WHERE company_id = $1")
            .bind(company.0)
            .fetch_one(&self.pool)
            .await?;
        Ok((members, cards))
    }
}
