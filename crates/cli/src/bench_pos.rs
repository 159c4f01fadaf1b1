//! `rxmember bench pos`: latency and throughput of the till's API (identify, quote, commit) over
//! real HTTP, driven by `wrk`, on a scratch SQLite database and (with `--pg`) a scratch PostgreSQL
//! database holding the demo chain. The server runs in this process on 127.0.0.1:0 with the same
//! router as `serve`; wrk's Lua scripts rotate through baskets built from the database's own cards,
//! stores and products, and every commit has its own ticket number. Commits are checked against the
//! database afterwards, so a failing commit cannot pass as a fast one. For comparison, the quote
//! path is also timed in-process, without HTTP.

use anyhow::{Context, Result, bail, ensure};
use rxmember_core::checkout::{HeldCoupon, QuoteRequest, quote};
use rxmember_core::member::MemberStatus;
use rxmember_core::org::Scope;
use rxmember_core::{CompanyId, Fen};
use rxmember_store::Store;
use rxmember_store::crypto::Crypto;
use rxmember_store::members::MemberQuery;
use rxmember_store::pos::{MemberKey, PosLineInput};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct PosBench {
    pub size: rxmember_demo::Size,
    pub pg: Option<String>,
    /// wrk's duration, e.g. `10s`.
    pub duration: String,
    pub connections: Vec<u32>,
    pub threads: u32,
}

/// One wrk run.
pub struct Row {
    pub backend: &'static str,
    pub endpoint: &'static str,
    pub connections: u32,
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx responses plus socket errors and timeouts.
    pub errors: u64,
    /// Commits only: tickets that appeared in the database during the run.
    pub tickets: Option<i64>,
}

/// The quote path timed in-process (no HTTP, no auth): per phase, over every basket.
pub struct InProcess {
    pub backend: &'static str,
    pub baskets: usize,
    pub identify: Percentiles,
    pub context: Percentiles,
    pub quote: Percentiles,
    pub total: Percentiles,
}

pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Percentiles {
    fn of(mut v: Vec<Duration>) -> Percentiles {
        v.sort_unstable();
        let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        Percentiles { p50_ms: at(0.50), p99_ms: at(0.99) }
    }
}

/// A basket as the till sends it.
#[derive(Clone)]
struct Basket {
    card_no: String,
    store_code: String,
    lines: Vec<(String, f64)>,
    use_points: i64,
}

impl Basket {
    fn json(&self) -> String {
        let lines: Vec<_> = self.lines.iter().map(|(c, q)| json!({ "product_code": c, "quantity": q })).collect();
        let mut body = json!({ "store_code": self.store_code, "card_no": self.card_no, "lines": lines });
        if self.use_points > 0 {
            body["use_points"] = json!(self.use_points);
        }
        body.to_string()
    }

    fn line_inputs(&self) -> Vec<PosLineInput> {
        self.lines
            .iter()
            .map(|(c, q)| PosLineInput {
                product_code: c.clone(),
                quantity_milli: (q * 1000.0).round() as i64,
                unit_price: None,
            })
            .collect()
    }
}

/// splitmix64: a fixed seed gives the same baskets on every run and backend.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const BASKETS: usize = 1_000;
/// Points deducted by the baskets that use points (100 points = 1 yuan in the demo rules).
const USE_POINTS: i64 = 100;
/// Each measured wrk run is preceded by an unmeasured one this long at the same concurrency, so the
/// figures are those of a server that has been running: PostgreSQL plans a prepared statement five
/// times before it settles on a generic plan, on each of the pool's connections (~2 ms each time
/// for the till's first read), which otherwise lands in the first seconds' p99.
const WARM_UP: &str = "3s";

/// Members whose baskets use points hold at least this many, so repeated commits cannot run dry.
const POINTS_FLOOR: i64 = 5_000;

pub async fn run(b: &PosBench) -> Result<(Vec<Row>, Vec<InProcess>)> {
    check_wrk()?;
    let tmp = std::env::temp_dir().join(format!("rxmember-bench-pos-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut rows = Vec::new();
    let mut inproc = Vec::new();

    let url = format!("sqlite://{}", tmp.join("bench.db").display());
    let store = Store::open(&url, Crypto::from_base64(&Crypto::generate_base64())?).await?;
    let result = run_backend("SQLite", &store, b, &tmp, &mut rows).await;
    store.close().await;
    inproc.push(result?);

    if let Some(admin) = &b.pg {
        let name = format!("rxm_bench_pos_{}", std::process::id());
        let url = rxmember_store::db::create_pg_database(admin, &name)
            .await
            .context("creating a scratch database with --pg")?;
        let store = Store::open(&url, Crypto::from_base64(&Crypto::generate_base64())?).await?;
        let result = run_backend("PostgreSQL", &store, b, &tmp, &mut rows).await;
        store.close().await;
        rxmember_store::db::drop_pg_database(admin, &name).await?;
        inproc.push(result?);
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok((rows, inproc))
}

fn check_wrk() -> Result<()> {
    match std::process::Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => bail!("wrk is not installed: sudo apt-get install -y wrk (Debian/Ubuntu), then run this again"),
    }
}

async fn run_backend(
    backend: &'static str,
    store: &Store,
    b: &PosBench,
    tmp: &Path,
    rows: &mut Vec<Row>,
) -> Result<InProcess> {
    let cli = Scope::cli();
    eprintln!("{backend}: loading the demo chain ({:?}) ...", b.size);
    let summary =
        rxmember_demo::load(store, &rxmember_demo::Options { size: b.size, seed: 42 }, &mut |m| eprintln!("  {m}"))
            .await?;
    eprintln!("  {summary}");
    // Autovacuum would otherwise analyze the freshly loaded tables while the till is measured.
    store.vacuum_analyze().await?;

    // The company with the most members, as its own till sees it.
    let mut company = None;
    for c in store.companies(&cli).await? {
        let (n, _) = store.member_counts(&cli, c.id).await?;
        if company.as_ref().is_none_or(|(_, m)| n > *m) {
            company = Some((c, n));
        }
    }
    let (company, member_count) = company.context("the demo made no company")?;
    let token = store.create_api_token(&cli, company.id, "bench-pos").await?;
    let scope = Scope::company_token(company.id, "bench-pos");

    let holders = hold_coupons(store, &cli, company.id, member_count).await?;
    let baskets = baskets(store, &scope, company.id, member_count).await?;
    eprintln!(
        "{backend}: {} baskets of company {} ({member_count} members, {holders} of them holding a coupon)",
        baskets.len(),
        company.code
    );
    ensure!(baskets.len() >= 100, "too few baskets passed the in-process quote");
    // Warm up once, then time every basket.
    for bk in &baskets {
        quote_in_process(store, &scope, company.id, bk).await?;
    }
    let mut phases = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for bk in &baskets {
        let [i, c, q] = quote_in_process(store, &scope, company.id, bk).await?;
        phases.0.push(i);
        phases.1.push(c);
        phases.2.push(q);
        phases.3.push(c + q);
    }
    let inproc = InProcess {
        backend,
        baskets: baskets.len(),
        identify: Percentiles::of(phases.0),
        context: Percentiles::of(phases.1),
        quote: Percentiles::of(phases.2),
        total: Percentiles::of(phases.3),
    };

    // The real server, in this process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = rxmember_server::AppState::new(store.clone(), false, None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, rxmember_server::router(state))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let base = format!("http://{addr}");

    let cards: Vec<&str> = baskets.iter().map(|b| b.card_no.as_str()).collect();
    let bodies: Vec<String> = baskets.iter().map(Basket::json).collect();
    let identify = lua_script(&token, "identify", &cards.iter().map(|c| format!("card_no={c}")).collect::<Vec<_>>());
    let quote = lua_script(&token, "quote", &bodies);
    // Commit bodies end where the script appends a ticket number of its own.
    let open: Vec<String> = bodies.iter().map(|s| s[..s.len() - 1].to_string()).collect();
    for (endpoint, script) in [("identify", identify), ("quote", quote)] {
        let path = tmp.join(format!("{endpoint}.lua"));
        std::fs::write(&path, script)?;
        for &c in &b.connections {
            // As a server that has run a while: every pooled connection has prepared the statements.
            wrk(&path, &base, c, b.threads, WARM_UP).await?;
            let r = wrk(&path, &base, c, b.threads, &b.duration).await?;
            eprintln!("  {backend} {endpoint} c={c}: {:.0} req/s, p99 {:.2} ms", r.rate(), r.p99_ms);
            rows.push(r.row(backend, endpoint, c, None));
        }
    }
    for (run, &c) in b.connections.iter().enumerate() {
        let warm = tmp.join(format!("commit-warm-{run}.lua"));
        std::fs::write(&warm, lua_script(&token, &format!("commit:PW{run}-"), &open))?;
        wrk(&warm, &base, c, b.threads, WARM_UP).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let script = lua_script(&token, &format!("commit:PB{run}-"), &open);
        let path = tmp.join(format!("commit-{run}.lua"));
        std::fs::write(&path, script)?;
        let (before, ..) = store.sales_totals(&cli, company.id).await?;
        let r = wrk(&path, &base, c, b.threads, &b.duration).await?;
        // Requests in flight when wrk stops may still commit (or be cancelled with their connection).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (after, ..) = store.sales_totals(&cli, company.id).await?;
        let tickets = after - before;
        let ok = r.requests as i64 - r.status_errors as i64;
        eprintln!(
            "  {backend} commit c={c}: {:.0} req/s, p99 {:.2} ms, {ok} × 2xx, {tickets} new tickets",
            r.rate(),
            r.p99_ms
        );
        ensure!(
            tickets >= ok && tickets <= ok + c as i64,
            "{backend} commit c={c}: wrk saw {ok} successful commits but {tickets} tickets were written"
        );
        rows.push(r.row(backend, "commit", c, Some(tickets)));
    }
    let _ = stop.send(());
    server.await??;
    Ok(inproc)
}

/// Issues the demo's 10-yuan coupon (JF500) to every third active member, so that quotes read and
/// weigh held coupons as they would at a real till (the demo itself issues few). Returns how many
/// members got one.
async fn hold_coupons(store: &Store, cli: &Scope, company: CompanyId, members: i64) -> Result<u64> {
    let mut ids = Vec::new();
    for page in 0..8 {
        let q = MemberQuery { company: Some(company), q: None, store: None, limit: 250, offset: members * page / 8 };
        for (i, m) in store.search_members(cli, &q).await?.members.into_iter().enumerate() {
            if m.status == MemberStatus::Active && i % 3 == 0 {
                ids.push(m.id);
            }
        }
    }
    // The pages overlap when the company has fewer members than they span.
    ids.sort_unstable();
    ids.dedup();
    // Issued yesterday (UTC), valid 90 days: usable today in any company's time zone.
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let report = store.issue_coupons(cli, company, "JF500", &ids, "bench-pos", day).await?;
    Ok(report.issued + report.unchanged)
}

/// Cards, stores and products picked from the database, spread over it, made into [`BASKETS`] baskets
/// (1–5 lines, a few split packs, every fourth using points where the member has enough); each is
/// quoted in-process once and kept only if the quote succeeds.
async fn baskets(store: &Store, scope: &Scope, company: CompanyId, members: i64) -> Result<Vec<Basket>> {
    let stores: Vec<String> = store.stores(scope, Some(company)).await?.into_iter().map(|s| s.code).collect();
    ensure!(!stores.is_empty(), "no stores");
    let (total, _) = store.products(scope, company, None, 1, 0).await?;
    let mut products = Vec::new();
    for page in 0..8 {
        let (_, ps) = store.products(scope, company, None, 100, total * page / 8).await?;
        products.extend(ps.into_iter().filter(|p| p.retail_price.is_some_and(|f| f > Fen(0))).map(|p| p.code));
    }
    ensure!(!products.is_empty(), "no products with a retail price");
    let mut cards = Vec::new();
    for page in 0..8 {
        let q = MemberQuery { company: Some(company), q: None, store: None, limit: 250, offset: members * page / 8 };
        for m in store.search_members(scope, &q).await?.members {
            if m.status == MemberStatus::Active {
                let balance =
                    store.pos_identify(scope, company, &MemberKey::Card(m.card_no.clone())).await?.points_balance;
                cards.push((m.card_no, balance));
            }
        }
    }
    ensure!(!cards.is_empty(), "no active members");
    let mut rng = Rng(42);
    let mut out = Vec::with_capacity(BASKETS);
    for i in 0..BASKETS {
        let (card, balance) = &cards[(i * 7919) % cards.len()];
        let n = 1 + rng.below(5);
        let lines = (0..n)
            .map(|_| {
                let q = match rng.below(10) {
                    0 => 0.5,
                    1 | 2 => 2.0,
                    _ => 1.0,
                };
                (products[rng.below(products.len())].clone(), q)
            })
            .collect();
        let mut bk = Basket {
            card_no: card.clone(),
            store_code: stores[rng.below(stores.len())].clone(),
            lines,
            use_points: if i % 4 == 0 && *balance >= POINTS_FLOOR { USE_POINTS } else { 0 },
        };
        if bk.use_points > 0 && quote_in_process(store, scope, company, &bk).await.is_err() {
            bk.use_points = 0;
        }
        if quote_in_process(store, scope, company, &bk).await.is_ok() {
            out.push(bk);
        }
    }
    Ok(out)
}

/// The server's quote path without HTTP: load the context (which finds the member in the same
/// statement as the company, store and rules), quote; and, apart, the member lookup alone (what
/// identify's first read costs). Returns the three times; the quote path is the last two.
async fn quote_in_process(store: &Store, scope: &Scope, company: CompanyId, b: &Basket) -> Result<[Duration; 3]> {
    let t0 = Instant::now();
    let member = store.pos_identify(scope, company, &MemberKey::Card(b.card_no.clone())).await?;
    let t1 = Instant::now();
    let key = MemberKey::Card(b.card_no.clone());
    let ctx = store.pos_context(scope, company, &b.store_code, Some(&key), &b.line_inputs(), None).await?;
    ensure!(ctx.member.as_ref().map(|m| m.member_id) == Some(member.member_id), "the context found another member");
    let t2 = Instant::now();
    let held: Vec<HeldCoupon> = ctx
        .held
        .iter()
        .map(|h| HeldCoupon { code: h.code.clone(), name: h.name.clone(), rules: h.rules.clone() })
        .collect();
    let at_till = ctx.member.as_ref().map(|m| m.at_till());
    let req = QuoteRequest {
        date: ctx.day,
        member: at_till.as_ref(),
        lines: &ctx.basket,
        held: &held,
        use_coupons: &[],
        use_points: b.use_points,
    };
    let q = quote(&ctx.rules, &req).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::hint::black_box(q);
    Ok([t1 - t0, t2 - t1, t2.elapsed()])
}

/// A wrk script. `mode` is `identify`, `quote` or `commit:PREFIX`: identify rotates query strings,
/// quote rotates bodies, commit appends `,"ticket_no":"PREFIX<thread>-<n>"}` to an open body so
/// every request has its own number. `done` prints one machine-readable line.
fn lua_script(token: &str, mode: &str, items: &[String]) -> String {
    let mut s = String::from("local items = {\n");
    for it in items {
        ensure_plain(it);
        s.push_str(&format!("[==[{it}]==],\n"));
    }
    s.push_str("}\n");
    s.push_str(&format!("local token = \"{token}\"\nlocal mode = \"{mode}\"\n"));
    s.push_str(
        r#"
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local counter = 0
local reqs = {}
local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
local prefix = nil

function init(args)
  if mode == "identify" then
    for i, q in ipairs(items) do reqs[i] = wrk.format("GET", "/api/v1/pos/members?" .. q, headers) end
  elseif mode == "quote" then
    for i, b in ipairs(items) do reqs[i] = wrk.format("POST", "/api/v1/pos/quote", headers, b) end
  else
    prefix = string.sub(mode, 8) .. tid .. "-"
  end
end

function request()
  counter = counter + 1
  local i = ((counter + tid * 389) % #items) + 1
  if prefix then
    local body = items[i] .. ',"ticket_no":"' .. prefix .. counter .. '"}'
    return wrk.format("POST", "/api/v1/pos/sales", headers, body)
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RXBENCH requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"#,
    );
    s
}

/// Lua long strings end at `]==]`; the bodies are JSON of codes and numbers.
fn ensure_plain(s: &str) {
    assert!(!s.contains("]=="), "unexpected text in a wrk item: {s}");
}

struct WrkResult {
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    status_errors: u64,
    socket_errors: u64,
}

impl WrkResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    fn row(&self, backend: &'static str, endpoint: &'static str, connections: u32, tickets: Option<i64>) -> Row {
        Row {
            backend,
            endpoint,
            connections,
            requests: self.requests,
            seconds: self.seconds,
            p50_ms: self.p50_ms,
            p99_ms: self.p99_ms,
            errors: self.status_errors + self.socket_errors,
            tickets,
        }
    }
}

async fn wrk(script: &Path, base: &str, connections: u32, threads: u32, duration: &str) -> Result<WrkResult> {
    let args: Vec<String> = vec![
        format!("-t{}", threads.min(connections)),
        format!("-c{connections}"),
        format!("-d{duration}"),
        "--timeout".into(),
        "10s".into(),
        "--latency".into(),
        "-s".into(),
        script.display().to_string(),
        base.to_string(),
    ];
    // wrk blocks: keep it off the runtime's workers, which serve its requests.
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("wrk").args(&args).output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RXBENCH "))
        .with_context(|| format!("no result from wrk:\n{stdout}"))?;
    let field = |k: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .with_context(|| format!("wrk result without {k}: {line}"))?
            .parse::<f64>()
            .with_context(|| format!("wrk result {k}: {line}"))
    };
    Ok(WrkResult {
        requests: field("requests")? as u64,
        seconds: field("duration_us")? / 1e6,
        p50_ms: field("p50_us")? / 1e3,
        p99_ms: field("p99_us")? / 1e3,
        status_errors: field("status")? as u64,
        socket_errors: (field("connect")? + field("read")? + field("write")? + field("timeout")?) as u64,
    })
}

pub fn print(rows: &[Row], inproc: &[InProcess]) {
    println!("| backend | endpoint | connections | requests | req/s | p50 ms | p99 ms | errors | new tickets |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.backend,
            r.endpoint,
            r.connections,
            r.requests,
            r.requests as f64 / r.seconds.max(1e-9),
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.tickets.map_or("".into(), |t| t.to_string())
        );
    }
    println!();
    println!(
        "In-process quote path (no HTTP, no auth), one caller, every basket once; the context finds the member \
         with the company, store and rules, so the quote path is context + core quote; identify is the member \
         lookup alone:"
    );
    println!();
    println!(
        "| backend | baskets | identify p50/p99 ms | context p50/p99 ms | core quote p50/p99 ms | quote path p50/p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for p in inproc {
        let f = |x: &Percentiles| format!("{:.3} / {:.3}", x.p50_ms, x.p99_ms);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            p.backend,
            p.baskets,
            f(&p.identify),
            f(&p.context),
            f(&p.quote),
            f(&p.total)
        );
    }
}
