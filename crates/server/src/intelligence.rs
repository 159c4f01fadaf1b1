//! Keeps the member-intelligence engine ([`rxmember_engine`]) in step with the store: builds a
//! company's engine from the store's facts, catches it up incrementally (new tickets, returns and
//! health checks by id; changed members by `updated_at`, with their whole history re-read), and
//! keeps a snapshot of the facts on disk for a fast restart.
//!
//! Where derived data lives and how it is invalidated: facts are cached in memory and in
//! `<engine dir>/<instance token>-<company>.snap`; the token is the database's identity, so a
//! snapshot never meets another database. Everything else is recomputed after each catch-up and at
//! the start of each day. Corrections to already-imported tickets are picked up by `engine rebuild`.

use rxmember_core::facts::MemberFact;
use rxmember_core::org::{DataScope, Role, Scope};
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, MemberId};
use rxmember_engine::company::CompanyEngine;
use rxmember_engine::data::{CompanyData, Day, day_of};
use rxmember_engine::derived::SavedTag;
use rxmember_engine::settings::Settings;
use rxmember_store::Store;
use rxmember_store::facts::{InputMarks, SalesFacts};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, RwLock};

const PAGE: i64 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum IntelligenceError {
    #[error(transparent)]
    Store(#[from] rxmember_store::StoreError),
    #[error("engine settings of company {company} are invalid: {reason}")]
    Settings { company: CompanyId, reason: String },
    #[error("writing the engine snapshot {path}: {source}")]
    Snapshot { path: String, source: std::io::Error },
}

type Result<T> = std::result::Result<T, IntelligenceError>;

/// What one build or catch-up read and how long it took.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Refresh {
    pub members: u64,
    pub reloaded_members: u64,
    pub tickets: u64,
    pub lines: u64,
    pub returns: u64,
    pub checks: u64,
    /// Members whose points or tier were read again.
    pub loyalty: u64,
    /// The rules' tier levels changed.
    pub tier_levels: bool,
    pub from_snapshot: bool,
    pub millis: u64,
}

impl Refresh {
    fn changed(&self) -> bool {
        self.members + self.tickets + self.returns + self.checks + self.loyalty > 0 || self.tier_levels
    }
}

/// One company's engine and the lock that serialises its refreshes.
pub struct CompanyHandle {
    pub company: CompanyId,
    pub engine: RwLock<CompanyEngine>,
    refreshing: Mutex<()>,
    /// When the snapshot on disk was last brought up to date, and whether facts have changed since.
    snapshot_at: std::sync::Mutex<(Instant, bool)>,
    /// The store's input marks read before the last build or catch-up that read everything after
    /// them: while the store's marks stay these, a request's catch-up has nothing to read.
    marks: std::sync::Mutex<Option<InputMarks>>,
    /// Catch-ups that read the store since the engine was built.
    catch_ups: std::sync::atomic::AtomicU64,
}

impl CompanyHandle {
    fn new(company: CompanyId, engine: CompanyEngine, marks: InputMarks) -> Arc<CompanyHandle> {
        // Built or restored just now: the snapshot on disk holds these facts.
        Arc::new(CompanyHandle {
            company,
            engine: RwLock::new(engine),
            refreshing: Mutex::new(()),
            snapshot_at: std::sync::Mutex::new((Instant::now(), false)),
            marks: std::sync::Mutex::new(Some(marks)),
            catch_ups: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many catch-ups read the store since the engine was built (requests finding nothing
    /// new in the store's marks do not).
    pub fn catch_ups(&self) -> u64 {
        self.catch_ups.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Option<InputMarks>> {
        self.marks.lock().expect("the input marks are never poisoned")
    }

    /// When the snapshot was last written, and whether facts changed since.
    fn snapshot_clock(&self) -> std::sync::MutexGuard<'_, (Instant, bool)> {
        self.snapshot_at.lock().expect("the snapshot clock is never poisoned")
    }
}

pub struct Intelligence {
    store: Store,
    dir: Option<PathBuf>,
    /// A catch-up that changed something writes the snapshot only if the last one is older than
    /// this (zero: always). A restart catches up from the snapshot's watermark, so an older
    /// snapshot only means more to read then; at millions of members each one is gigabytes.
    snapshot_every: std::time::Duration,
    companies: Mutex<HashMap<CompanyId, Arc<CompanyHandle>>>,
    building: Mutex<()>,
}

fn system_scope(company: CompanyId) -> Scope {
    Scope { staff: None, role: Role::CompanyAdmin, data: DataScope::Company { company }, actor: "engine".into() }
}

impl Intelligence {
    /// `dir`: where snapshots are kept (`None`: never written, as in tests); one is written after
    /// every catch-up that changed something.
    pub fn new(store: Store, dir: Option<PathBuf>) -> Arc<Intelligence> {
        Self::with_snapshot_interval(store, dir, std::time::Duration::ZERO)
    }

    /// As [`Intelligence::new`], writing a snapshot after a catch-up only once `every` has passed
    /// since the last (a server catches up on every request).
    pub fn with_snapshot_interval(store: Store, dir: Option<PathBuf>, every: std::time::Duration) -> Arc<Intelligence> {
        Arc::new(Intelligence {
            store,
            dir,
            snapshot_every: every,
            companies: Mutex::new(HashMap::new()),
            building: Mutex::new(()),
        })
    }

    /// Today in the company's time zone.
    pub fn today(offset_minutes: i32) -> Day {
        day_of(now_ms(), offset_minutes)
    }

    /// The company's engine, built (or restored from its snapshot) on first use and caught up with
    /// the store on every call. The day rolls over here too.
    pub async fn company(&self, company: CompanyId) -> Result<Arc<CompanyHandle>> {
        let existing = self.companies.lock().await.get(&company).cloned();
        if let Some(h) = existing {
            // A catch-up already under way (another request's) is not started again: this request
            // reads the engine once that catch-up lets go of its write lock, at once while only
            // its snapshot is being written.
            if let Ok(one_at_a_time) = h.refreshing.try_lock() {
                self.catch_up_if_changed(&h, one_at_a_time).await?;
            }
            return Ok(h);
        }
        // One build at a time: a second caller waits and then finds the engine built.
        let _building = self.building.lock().await;
        if let Some(h) = self.companies.lock().await.get(&company).cloned() {
            return Ok(h);
        }
        let (engine, _, marks) = self.build(company, true).await?;
        let h = CompanyHandle::new(company, engine, marks);
        self.companies.lock().await.insert(company, h.clone());
        Ok(h)
    }

    /// Writes the snapshot of every company whose facts changed since its last one (at a graceful
    /// shutdown: the next start then has nothing to catch up).
    pub async fn flush_snapshots(&self) -> Result<()> {
        let handles: Vec<Arc<CompanyHandle>> = self.companies.lock().await.values().cloned().collect();
        for h in handles {
            let _one_at_a_time = h.refreshing.lock().await;
            if !h.snapshot_clock().1 {
                continue;
            }
            let engine = h.engine.read().await;
            self.snapshot(&h, &engine.data).await?;
        }
        Ok(())
    }

    /// Throws the engine away and builds it again from the store.
    pub async fn rebuild(&self, company: CompanyId) -> Result<Refresh> {
        let _building = self.building.lock().await;
        let (engine, report, marks) = self.build(company, false).await?;
        let h = CompanyHandle::new(company, engine, marks);
        self.companies.lock().await.insert(company, h);
        Ok(report)
    }

    async fn config(&self, company: CompanyId) -> Result<(Settings, Vec<SavedTag>)> {
        let scope = system_scope(company);
        let settings = match self.store.engine_settings(&scope, company).await? {
            Some(json) => parse_settings(&json).map_err(|reason| IntelligenceError::Settings { company, reason })?,
            None => Settings::default(),
        };
        let tags = self
            .store
            .saved_tags(&scope, company)
            .await?
            .into_iter()
            .map(|t| SavedTag { name: t.name, expression: t.expression, members: t.members })
            .collect();
        Ok((settings, tags))
    }

    async fn build(&self, company: CompanyId, use_snapshot: bool) -> Result<(CompanyEngine, Refresh, InputMarks)> {
        let started = Instant::now();
        let scope = system_scope(company);
        let info = self.store.company(&scope, company).await?;
        // Before anything is read: what is written meanwhile moves the marks past these.
        let marks = self.store.fact_input_marks(&scope, company).await?;
        let path = self.snapshot_path(company).await?;
        let restored = match (&path, use_snapshot) {
            (Some(p), true) => tokio::fs::read(p).await.ok().and_then(|b| CompanyEngine::restore(&b)),
            _ => None,
        };
        let from_snapshot = restored.is_some();
        let mut data = restored.unwrap_or_else(|| CompanyData::new(company, info.utc_offset_minutes));
        let mut report = catch_up_data(&self.store, &scope, &mut data).await?;
        report.from_snapshot = from_snapshot;
        let taxonomy = self.store.taxonomy(&scope, company).await?;
        let (settings, tags) = self.config(company).await?;
        let today = Self::today(info.utc_offset_minutes);
        if report.changed() || !from_snapshot {
            self.save_snapshot(&path, &data).await?;
        }
        let engine = tokio::task::spawn_blocking(move || CompanyEngine::new(data, taxonomy, settings, tags, today))
            .await
            .expect("engine derivation panicked");
        report.millis = started.elapsed().as_millis() as u64;
        tracing::debug!(company = company.0, ?report, "engine built");
        Ok((engine, report, marks))
    }

    /// Reads what is new in the store into the company's engine and recomputes what depends on it.
    pub async fn catch_up(&self, h: &CompanyHandle) -> Result<Refresh> {
        let one_at_a_time = h.refreshing.lock().await;
        let marks = self.store.fact_input_marks(&system_scope(h.company), h.company).await?;
        self.catch_up_from(h, one_at_a_time, marks).await
    }

    /// A request's catch-up: one read of the store's input marks, and the whole catch-up only when
    /// they moved since the last one (or the day rolled over). Reading the configuration, stores
    /// and products again on every request took tens of milliseconds, and more with the size of
    /// the catalogue and of the saved tags' member lists.
    async fn catch_up_if_changed(
        &self,
        h: &CompanyHandle,
        one_at_a_time: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<Option<Refresh>> {
        let marks = self.store.fact_input_marks(&system_scope(h.company), h.company).await?;
        let same_day = {
            let engine = h.engine.read().await;
            engine.current().as_of == Self::today(engine.data.offset_minutes)
        };
        if same_day && *h.marks() == Some(marks) {
            self.snapshot_if_due(h, &*h.engine.read().await).await;
            return Ok(None);
        }
        self.catch_up_from(h, one_at_a_time, marks).await.map(Some)
    }

    /// Catches up on everything after the engine's watermarks; `marks`, read before, are kept
    /// once it succeeded.
    async fn catch_up_from(
        &self,
        h: &CompanyHandle,
        _one_at_a_time: tokio::sync::MutexGuard<'_, ()>,
        marks: InputMarks,
    ) -> Result<Refresh> {
        let started = Instant::now();
        let scope = system_scope(h.company);
        // Until this catch-up succeeds, the next one reads everything again.
        *h.marks() = None;
        let (settings, tags) = self.config(h.company).await?;
        let taxonomy = self.store.taxonomy(&scope, h.company).await?;
        let mut engine = h.engine.write().await;
        let mut report = catch_up_data(&self.store, &scope, &mut engine.data).await?;
        let today = Self::today(engine.data.offset_minutes);
        let config_changed = engine.settings != settings || engine.saved_tags != tags || engine.taxonomy != taxonomy;
        if config_changed || engine.current().as_of != today {
            engine.settings = settings;
            engine.saved_tags = tags;
            engine.taxonomy = taxonomy;
            engine.rederive(today);
        } else if report.changed() {
            // Same day, same configuration: only the members with new facts are recomputed.
            engine.update(today);
        }
        *h.marks() = Some(marks);
        h.catch_ups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        h.snapshot_clock().1 |= report.changed();
        // Questions are answered while the snapshot is written (seconds at millions of members):
        // the engine is only read from here on, and requests arriving meanwhile do not wait for
        // this catch-up.
        self.snapshot_if_due(h, &engine.downgrade()).await;
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Writes the snapshot if facts changed since the last one and that one is old enough. A
    /// failed write is logged and tried again next time: the catch-up itself succeeded.
    async fn snapshot_if_due(&self, h: &CompanyHandle, engine: &CompanyEngine) {
        let due = {
            let clock = h.snapshot_clock();
            clock.1 && clock.0.elapsed() >= self.snapshot_every
        };
        if due && let Err(e) = self.snapshot(h, &engine.data).await {
            tracing::warn!(company = h.company.0, error = %e, "engine snapshot not written");
        }
    }

    async fn snapshot_path(&self, company: CompanyId) -> Result<Option<PathBuf>> {
        let Some(dir) = &self.dir else { return Ok(None) };
        let token = self.store.instance_token().await?;
        Ok(Some(dir.join(format!("{token}-{}.snap", company.0))))
    }

    /// Writes the company's snapshot of `data` and marks it up to date.
    async fn snapshot(&self, h: &CompanyHandle, data: &CompanyData) -> Result<()> {
        let path = self.snapshot_path(h.company).await?;
        self.save_snapshot(&path, data).await?;
        *h.snapshot_clock() = (Instant::now(), false);
        Ok(())
    }

    async fn save_snapshot(&self, path: &Option<PathBuf>, data: &CompanyData) -> Result<()> {
        let Some(path) = path else { return Ok(()) };
        let err = |source| IntelligenceError::Snapshot { path: path.display().to_string(), source };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(err)?;
        }
        // Written aside as it is serialised (no copy of the facts in memory; gigabytes at 10M
        // members) and renamed, so a crash never leaves a half-written snapshot.
        // Each writer has its own file aside (a rebuild and a catch-up may write at once; the last
        // rename wins, and both files are whole).
        static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("snap.{}-{n}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let w = CompanyEngine::write_snapshot(data, std::io::BufWriter::new(std::fs::File::create(&tmp)?))?;
            w.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
        };
        // Off the runtime's worker where the runtime has others to run requests on.
        let written = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(write),
            _ => write(),
        };
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        tokio::fs::rename(&tmp, path).await.map_err(err)?;
        Ok(())
    }
}

/// Parses and validates a settings document.
pub fn parse_settings(json: &str) -> std::result::Result<Settings, String> {
    let s: Settings = serde_json::from_str(json).map_err(|e| e.to_string())?;
    s.validate()?;
    Ok(s)
}

/// Reads everything after `data`'s watermark into it.
async fn catch_up_data(store: &Store, scope: &Scope, data: &mut CompanyData) -> Result<Refresh> {
    let company = data.company;
    let first = data.is_empty() && data.watermark == Default::default();
    let mut r = Refresh::default();
    data.set_stores(store.fact_stores(scope, company).await?);
    data.set_products(store.fact_products(scope, company).await?);

    // Members changed since the watermark. On a catch-up, their history is read again whole: a new
    // card may have linked tickets imported before it.
    let since = data.watermark.member_updated_at;
    let (mut after_id, mut after) = (0, (since, i64::MAX));
    let mut reload: Vec<MemberId> = Vec::new();
    loop {
        // The first read takes every member in id order; a catch-up those changed after the
        // watermark, by their update time.
        let page: Vec<MemberFact> = if first {
            store.fact_members(scope, company, after_id, PAGE).await?
        } else {
            store.fact_members_changed(scope, company, after, PAGE).await?
        };
        let Some(last) = page.last() else { break };
        (after_id, after) = (last.id.0, (last.updated_at, last.id.0));
        r.members += page.len() as u64;
        for m in &page {
            if !first {
                reload.push(m.id);
            }
            data.apply_member(m);
        }
    }
    let reloaded: HashSet<i64> = reload.iter().map(|m| m.0).collect();
    for chunk in reload.chunks(5_000) {
        for m in chunk {
            if let Some(o) = data.ordinal(*m) {
                data.clear_history(o);
            }
        }
        let SalesFacts { tickets, lines } = store.fact_sales_of_members(scope, company, chunk).await?;
        data.apply_sales(&tickets, &lines, false, |_| true);
        for ret in store.fact_returns_of_members(scope, company, chunk).await? {
            data.apply_return_member(&ret);
        }
        data.apply_checks(&store.fact_health_checks_of_members(scope, company, chunk).await?, false, |_| true);
        r.reloaded_members += chunk.len() as u64;
    }
    let fresh = |m: Option<MemberId>| m.is_some_and(|m| !reloaded.contains(&m.0));

    loop {
        let page = store.fact_sales(scope, company, data.watermark.ticket_id, PAGE).await?;
        if page.tickets.is_empty() {
            break;
        }
        r.tickets += page.tickets.len() as u64;
        r.lines += page.lines.len() as u64;
        data.apply_sales(&page.tickets, &page.lines, true, |m| fresh(Some(m)));
    }
    loop {
        let page = store.fact_returns(scope, company, data.watermark.return_id, PAGE).await?;
        if page.is_empty() {
            break;
        }
        r.returns += page.len() as u64;
        for ret in &page {
            data.apply_return_totals(ret);
            if fresh(ret.member) {
                data.apply_return_member(ret);
            }
        }
    }
    loop {
        let page = store.fact_health_checks(scope, company, data.watermark.check_id, PAGE).await?;
        if page.is_empty() {
            break;
        }
        r.checks += page.len() as u64;
        data.apply_checks(&page, true, |m| fresh(Some(m)));
    }
    catch_up_loyalty(store, scope, data, &reload, &mut r).await?;
    Ok(r)
}

/// Reads the points and tiers of members whose loyalty state changed since the watermarks (of every
/// member with any, the first time), and of the members read again in this catch-up: a member who
/// registered and earned between the member read and the ledger read of the previous catch-up was
/// unknown to the engine when its ledger entry went past.
async fn catch_up_loyalty(
    store: &Store,
    scope: &Scope,
    data: &mut CompanyData,
    reloaded: &[MemberId],
    r: &mut Refresh,
) -> Result<()> {
    let company = data.company;
    r.tier_levels = data.set_tier_levels(store.fact_tier_levels(scope, company).await?);
    let (mut ledger_id, mut tier_id) = (data.watermark.ledger_id, data.watermark.tier_id);
    if ledger_id == 0 && tier_id == 0 {
        // First read: the watermarks before the state, so what is written meanwhile is read again
        // next time rather than missed.
        (ledger_id, tier_id) = store.fact_loyalty_marks(scope, company).await?;
        let mut after = 0;
        loop {
            let members = store.fact_loyalty_members(scope, company, after, PAGE).await?;
            let Some(last) = members.last() else { break };
            after = last.0;
            r.loyalty += members.len() as u64;
            data.apply_loyalty(store.fact_loyalty_of_members(scope, company, &members).await?);
        }
    } else {
        let mut changes = store.fact_loyalty_changes(scope, company, ledger_id, tier_id).await?;
        (ledger_id, tier_id) = (changes.ledger_id, changes.tier_id);
        changes.members.extend_from_slice(reloaded);
        changes.members.sort_unstable_by_key(|m| m.0);
        changes.members.dedup();
        for chunk in changes.members.chunks(PAGE as usize) {
            r.loyalty += chunk.len() as u64;
            data.apply_loyalty(store.fact_loyalty_of_members(scope, company, chunk).await?);
        }
    }
    data.watermark.ledger_id = ledger_id;
    data.watermark.tier_id = tier_id;
    Ok(())
}
