//! `rxmember bench engine --size large|huge|small|tiny`: the engine on a generated chain, side by
//! side with DuckDB. The demo generator streams one company's facts straight into the engine (no
//! store in between); the engine's full build, one day's incremental update, count latency over the
//! fixed expressions and memory are measured; the same facts go to DuckDB as CSV (the `duckdb`
//! Python package, installed into `bench/.venv` on first use) which computes the same features and
//! grades with SQL and answers the same questions. Counts must agree; times are printed as ratios.

use crate::bench_engine::{QUERIES, cpu_s, peak_rss_mb, percentile, rss_mb, thread_cpu_s, time_counts};
use anyhow::{Context, Result, bail};
use rxmember_core::CompanyId;
use rxmember_core::facts::{HealthCheckFact, LineFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact};
use rxmember_core::taxonomy::Taxonomy;
use rxmember_demo::{DEMO_END, FactStream, Options, Size};
use rxmember_engine::company::CompanyEngine;
use rxmember_engine::data::{CompanyData, Day, NONE_U32, date_of_day, day_of, day_of_date};
use rxmember_engine::features::NONE_I32;
use rxmember_engine::settings::Settings;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct ChainBench {
    pub size: Size,
    pub seed: u64,
    pub company: Option<String>,
    pub repeat: usize,
    pub duckdb: bool,
    pub dir: PathBuf,
    /// Days held back from the build and read in afterwards, one update each (at least 1).
    pub days: usize,
    /// What becomes of the restart's snapshot (`dir/engine-SIZE-SEED.snap`).
    pub snapshot: SnapshotUse,
}

/// The restart's snapshot file: removed after the restart, kept for later runs, or read instead of
/// generating the chain (counts only: a count's code can be measured at 10M members in a minute
/// rather than the ten a generation takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotUse {
    Remove,
    Keep,
    CountsOnly,
}

/// Time zone of the demo chain (UTC+8), in minutes.
const OFFSET: i32 = 480;

/// DuckDB's memory limit: the engine is dropped before DuckDB starts, so the two never hold the
/// huge chain at once; with this, neither goes much beyond 12 GB on a shared 23 GB machine.
const DUCKDB_MEMORY_LIMIT: &str = "12GB";

struct Built {
    engine: CompanyEngine,
    summary: String,
    build_s: f64,
    /// The build's phases: reading the facts in, sealing them into members' runs, deriving.
    build_phases: [f64; 3],
    /// The reading by kind of fact (see [`Feed::read_by_kind`]), wall and the reading thread's CPU.
    read_by_kind: [f64; 5],
    read_cpu_by_kind: [f64; 5],
    /// The seal's and the derive's phases (name, ms).
    build_seal_timings: Vec<(&'static str, f64)>,
    build_timings: Vec<(&'static str, f64)>,
    /// The first update's seal phases (name, ms).
    day_seal_timings: Vec<(&'static str, f64)>,
    /// The first update's recompute phases (name, ms).
    day_timings: Vec<(&'static str, f64)>,
    /// Every held-back day's update: (day, tickets, wall s, seal s, recompute s, the seal's phases).
    updates: Vec<(Day, usize, f64, f64, f64, String)>,
    build_cpu_s: f64,
    day_s: f64,
    day_cpu_s: f64,
    /// The update's phases: reading the day's facts in, sealing, recomputing.
    day_phases: [f64; 3],
    day_tickets: usize,
    day_lines: usize,
    /// Generating the company, without the time the engine spent reading its facts.
    generate_s: f64,
    rss_mb: f64,
    peak_rss_mb: f64,
}

/// The facts of one day, in the order read.
#[derive(Default)]
struct DayFacts {
    tickets: Vec<TicketFact>,
    lines: Vec<LineFact>,
    returns: Vec<ReturnFact>,
    checks: Vec<HealthCheckFact>,
}

/// What the company holds, for the summary line.
#[derive(Default)]
struct Counted {
    members: usize,
    stores: usize,
    products: usize,
    tickets: u64,
    all_lines: u64,
    member_lines: u64,
    returns: u64,
    checks: u64,
}

/// Reads the wanted company's facts into the engine's data as the generator hands them over (the
/// last day's held back for the incremental update), and builds the engine once they are complete:
/// the generator's facts are never all held at once, which is what lets the 10M-member chain run.
struct Feed {
    wanted: Option<String>,
    /// The as-of day, the last of the days held back.
    last: Day,
    /// The first day held back.
    first_held: Day,
    started: Instant,
    code: String,
    data: Option<CompanyData>,
    /// The days held back, from `first_held` on.
    held: Vec<DayFacts>,
    counted: Counted,
    /// Time spent reading facts into the engine: wall, and this thread's CPU.
    read_s: f64,
    read_cpu_s: f64,
    /// Of the reading, by kind of fact: stores and products, members, tickets, returns, checks (s),
    /// wall and this thread's CPU.
    read_by_kind: [f64; 5],
    read_cpu_by_kind: [f64; 5],
    built: Option<Built>,
    /// Profiles the reading alone (phase `read`), each batch's engine work between the
    /// generator's.
    perf: PerfControl,
}

/// A stopwatch for one batch of reading: wall and thread CPU time.
struct Lap(Instant, f64);

impl Lap {
    fn start() -> Lap {
        Lap(Instant::now(), thread_cpu_s())
    }
}

impl Feed {
    fn data(&mut self) -> &mut CompanyData {
        self.data.as_mut().expect("a wanted company is being read")
    }

    /// Starts timing (and profiling) a batch's reading.
    fn start(&self) -> Lap {
        self.perf.send("read", "enable");
        Lap::start()
    }

    fn lap(&mut self, lap: Lap, kind: usize) {
        self.perf.send("read", "disable");
        self.read_by_kind[kind] += lap.0.elapsed().as_secs_f64();
        self.read_s += lap.0.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - lap.1;
        self.read_cpu_s += cpu;
        self.read_cpu_by_kind[kind] += cpu;
    }
}

/// Reads tickets and their lines (member tickets' lines follow their ticket, in ticket order) into
/// the engine's data, as the store hands them over; returns how many tickets and lines.
fn read_tickets(data: &mut CompanyData, tickets: &[TicketFact], lines: &[LineFact]) -> (usize, usize) {
    data.apply_sales(tickets, lines, true, |_| true);
    (tickets.len(), lines.len())
}

fn read_returns(data: &mut CompanyData, returns: &[ReturnFact]) {
    for r in returns {
        data.apply_return_totals(r);
        data.apply_return_member(r);
    }
}

fn read_checks(data: &mut CompanyData, checks: &[HealthCheckFact]) {
    data.apply_checks(checks, true, |_| true);
}

impl FactStream for Feed {
    fn company(&mut self, code: &str, _name: &str) -> bool {
        let take = match &self.wanted {
            Some(wanted) => code.eq_ignore_ascii_case(wanted),
            None => true,
        };
        if take && self.built.is_none() {
            self.code = code.to_string();
            self.data = Some(CompanyData::new(CompanyId(1), OFFSET));
            self.started = Instant::now();
            PerfControl::from_env().send("build", "enable");
            return true;
        }
        false
    }

    fn stores(&mut self, stores: &[StoreFact]) {
        let lap = self.start();
        self.counted.stores += stores.len();
        self.data().set_stores(stores.to_vec());
        self.lap(lap, 0);
    }

    fn products(&mut self, products: &[ProductFact]) {
        let lap = self.start();
        self.counted.products += products.len();
        self.data().set_products(products.to_vec());
        self.lap(lap, 0);
    }

    fn members(&mut self, members: Vec<MemberFact>) {
        let lap = self.start();
        self.counted.members += members.len();
        let data = self.data();
        for m in &members {
            data.apply_member(m);
        }
        self.lap(lap, 1);
        // The generator's facts are freed after the engine's lap, as a store's reader frees its
        // page of rows: the engine copies what it keeps and frees nothing of them.
        drop(members);
    }

    fn tickets(&mut self, tickets: &[TicketFact], lines: &[LineFact]) {
        let lap = self.start();
        self.counted.tickets += tickets.len() as u64;
        self.counted.all_lines += tickets.iter().map(|t| t.line_count as u64).sum::<u64>();
        self.counted.member_lines += lines.len() as u64;
        let (first, last) = (self.first_held, self.last);
        let data = self.data.as_mut().expect("a wanted company is being read");
        if tickets.iter().all(|t| day_of(t.sold_at, OFFSET) < first) {
            // No held-back day in this batch (all but the last few).
            read_tickets(data, tickets, lines);
            self.lap(lap, 2);
            return;
        }
        let mut next = 0;
        for t in tickets {
            let n = lines[next..].iter().take_while(|l| l.ticket == t.id).count();
            let own = &lines[next..next + n];
            next += n;
            let day = day_of(t.sold_at, OFFSET);
            if day < first {
                read_tickets(data, std::slice::from_ref(t), own);
            } else if day <= last {
                let held = &mut self.held[(day - first) as usize];
                held.tickets.push(*t);
                held.lines.extend_from_slice(own);
            }
        }
        self.lap(lap, 2);
    }

    fn returns(&mut self, returns: &[ReturnFact]) {
        let lap = self.start();
        self.counted.returns += returns.len() as u64;
        let (first, last) = (self.first_held, self.last);
        if returns.iter().all(|r| day_of(r.sold_at, OFFSET) < first) {
            read_returns(self.data(), returns);
            self.lap(lap, 3);
            return;
        }
        let read: Vec<ReturnFact> = returns.iter().filter(|r| day_of(r.sold_at, OFFSET) < first).copied().collect();
        read_returns(self.data(), &read);
        for r in returns {
            let day = day_of(r.sold_at, OFFSET);
            if (first..=last).contains(&day) {
                self.held[(day - first) as usize].returns.push(*r);
            }
        }
        self.lap(lap, 3);
    }

    fn checks(&mut self, checks: &[HealthCheckFact]) {
        let lap = self.start();
        self.counted.checks += checks.len() as u64;
        let (first, last) = (self.first_held, self.last);
        if checks.iter().all(|c| day_of(c.checked_at, OFFSET) < first) {
            // No held-back day in this batch (all but the last few): read as handed over (the
            // copy below is the bench's, not the engine's work).
            read_checks(self.data(), checks);
            self.lap(lap, 4);
            return;
        }
        let read: Vec<HealthCheckFact> =
            checks.iter().filter(|c| day_of(c.checked_at, OFFSET) < first).copied().collect();
        read_checks(self.data(), &read);
        for c in checks {
            let day = day_of(c.checked_at, OFFSET);
            if (first..=last).contains(&day) {
                self.held[(day - first) as usize].checks.push(*c);
            }
        }
        self.lap(lap, 4);
    }

    fn end(&mut self) -> bool {
        let data = self.data.take().expect("a wanted company was read");
        let generate_s = self.started.elapsed().as_secs_f64() - self.read_s;
        eprintln!(
            "{}: generated in {generate_s:.1} s, read into the engine as it came in {:.1} s; sealing and deriving ...",
            self.code, self.read_s
        );
        self.built = Some(build(self, data, generate_s));
        false
    }
}

/// Phases as "name 12 ms, ...".
fn phases(timings: &[(&'static str, f64)]) -> String {
    timings.iter().map(|(name, ms)| format!("{name} {ms:.0} ms")).collect::<Vec<_>>().join(", ")
}

/// `perf record --control fifo:CTL -D -1` profiles one phase of the bench when it runs with
/// `RXMEMBER_PERF_CTL=CTL`: perf is told to enable before the phase and disable after.
/// `RXMEMBER_PERF_PHASE` names the phase: `updates` (the default: each held-back day's update),
/// `build` (reading the facts in — the generator's own work included, told apart by symbol —
/// sealing and deriving), `read` (the engine's reading of each batch alone), `seal` or `derive`
/// (those parts of the full build alone) or `counts` (the counts of the fixed expressions).
struct PerfControl(Option<std::fs::File>, String);

impl PerfControl {
    fn from_env() -> PerfControl {
        PerfControl(
            std::env::var_os("RXMEMBER_PERF_CTL").and_then(|p| std::fs::OpenOptions::new().write(true).open(p).ok()),
            std::env::var("RXMEMBER_PERF_PHASE").unwrap_or_else(|_| "updates".into()),
        )
    }

    /// Tells perf to enable or disable when `phase` is the one profiled.
    fn send(&self, phase: &str, command: &str) {
        if let Some(mut f) = self.0.as_ref().filter(|_| self.1 == phase) {
            // A profile missing a few samples is no reason to stop the bench.
            let _ = writeln!(f, "{command}");
        }
    }
}

fn build(feed: &mut Feed, mut data: CompanyData, generate_s: f64) -> Built {
    let last = feed.last;
    let perf = PerfControl::from_env();
    let started = Instant::now();
    let cpu = cpu_s();
    perf.send("seal", "enable");
    data.seal();
    perf.send("seal", "disable");
    let seal_s = started.elapsed().as_secs_f64();
    let build_seal_timings = data.seal_timings.clone();
    perf.send("derive", "enable");
    let mut engine = CompanyEngine::new(data, Taxonomy::default_pharmacy(), Settings::default(), Vec::new(), last);
    perf.send("derive", "disable");
    let derive_s = started.elapsed().as_secs_f64() - seal_s;
    let build_s = feed.read_s + seal_s + derive_s;
    let build_phases = [feed.read_s, seal_s, derive_s];
    let build_timings = engine.current().timings.clone();
    let build_cpu_s = feed.read_cpu_s + cpu_s() - cpu;
    // The held-back days' sales arrive a day at a time (as imports during the as-of day): each is
    // read in and what depends on it recomputed.
    let mut updates = Vec::new();
    let (mut day_seal_timings, mut day_timings) = (Vec::new(), Vec::new());
    let (mut day_s, mut day_cpu_s, mut day_phases, mut day_tickets, mut day_lines) = (0.0, 0.0, [0.0; 3], 0, 0);
    perf.send("build", "disable");
    for (i, day) in std::mem::take(&mut feed.held).into_iter().enumerate() {
        perf.send("updates", "enable");
        let started = Instant::now();
        let cpu = cpu_s();
        let (tickets, lines) = read_tickets(&mut engine.data, &day.tickets, &day.lines);
        read_returns(&mut engine.data, &day.returns);
        read_checks(&mut engine.data, &day.checks);
        let read_s = started.elapsed().as_secs_f64();
        engine.data.seal();
        let seal_s = started.elapsed().as_secs_f64() - read_s;
        engine.update(last);
        let wall = started.elapsed().as_secs_f64();
        perf.send("updates", "disable");
        let seal_phases = phases(&engine.data.seal_timings);
        updates.push((feed.first_held + i as Day, tickets, wall, seal_s, wall - read_s - seal_s, seal_phases));
        if i == 0 {
            day_seal_timings = engine.data.seal_timings.clone();
            day_timings = engine.current().timings.clone();
            (day_s, day_cpu_s, day_tickets, day_lines) = (wall, cpu_s() - cpu, tickets, lines);
            day_phases = [read_s, seal_s, wall - read_s - seal_s];
        }
    }
    let c = &feed.counted;
    let summary = format!(
        "company {} — {} members, {} stores, {} products; {} tickets ({} lines, {} of them on member tickets), {} returns, {} health checks",
        feed.code, c.members, c.stores, c.products, c.tickets, c.all_lines, c.member_lines, c.returns, c.checks
    );
    Built {
        engine,
        summary,
        build_s,
        build_phases,
        read_by_kind: feed.read_by_kind,
        read_cpu_by_kind: feed.read_cpu_by_kind,
        build_seal_timings,
        build_timings,
        day_seal_timings,
        day_timings,
        updates,
        build_cpu_s,
        day_s,
        day_cpu_s,
        day_phases,
        day_tickets,
        day_lines,
        generate_s,
        rss_mb: rss_mb(),
        peak_rss_mb: peak_rss_mb(),
    }
}

/// The snapshot a run with [`SnapshotUse::Keep`] leaves.
fn snapshot_path(b: &ChainBench) -> PathBuf {
    b.dir.join(format!("{}.snap", stem(b)))
}

fn stem(b: &ChainBench) -> String {
    format!("engine-{:?}-{}", b.size, b.seed).to_lowercase()
}

/// Counts only, on the engine restored from a kept snapshot (the chain is not generated).
fn counts_from_snapshot(b: &ChainBench, as_of: Day) -> Result<()> {
    let snap = snapshot_path(b);
    if !snap.exists() {
        bail!(
            "no snapshot at {}: run once with --keep-snapshot (same --size, --seed and --data-dir) to leave one",
            snap.display()
        );
    }
    eprintln!("restoring {} ...", snap.display());
    let started = Instant::now();
    let bytes = std::fs::read(&snap)?;
    let data = CompanyEngine::restore(&bytes).context("the snapshot reads back")?;
    drop(bytes);
    let engine = CompanyEngine::new(data, Taxonomy::default_pharmacy(), Settings::default(), Vec::new(), as_of);
    let d = engine.current();
    println!(
        "engine counts on a kept snapshot of the {:?} chain (seed {}), as of {}: {} members, restored and derived in {:.1} s",
        b.size,
        b.seed,
        date_of_day(as_of),
        engine.data.len(),
        started.elapsed().as_secs_f64()
    );
    let perf = PerfControl::from_env();
    perf.send("counts", "enable");
    let timed = time_counts(&engine, &d, b.repeat);
    perf.send("counts", "disable");
    print_counts(&timed, None);
    Ok(())
}

pub fn run(b: &ChainBench) -> Result<()> {
    let opts = Options { size: b.size, seed: b.seed };
    let end = chrono::NaiveDate::from_ymd_opt(DEMO_END.0, DEMO_END.1, DEMO_END.2).expect("valid date");
    let mut feed = Feed {
        wanted: b.company.clone(),
        last: day_of_date(end),
        first_held: day_of_date(end) - b.days.max(1) as Day + 1,
        started: Instant::now(),
        code: String::new(),
        data: None,
        held: (0..b.days.max(1)).map(|_| DayFacts::default()).collect(),
        counted: Counted::default(),
        read_s: 0.0,
        read_cpu_s: 0.0,
        read_by_kind: [0.0; 5],
        read_cpu_by_kind: [0.0; 5],
        built: None,
        perf: PerfControl::from_env(),
    };
    if b.snapshot == SnapshotUse::CountsOnly {
        return counts_from_snapshot(b, feed.last);
    }
    // Found before the generator's minutes, not after them.
    let scripts = if b.duckdb { Some(scripts_dir()?) } else { None };
    eprintln!("generating the {:?} demo chain (seed {}) ...", b.size, b.seed);
    rxmember_demo::facts(&opts, &mut feed, &mut |msg| eprintln!("  {msg}"));
    let Some(built) = feed.built else { bail!("the {:?} chain has no company {:?}", b.size, b.company) };
    let engine = &built.engine;
    let d = engine.current();
    let as_of = d.as_of;
    println!("engine bench on the generated {:?} chain (seed {}), as of {}", b.size, b.seed, date_of_day(as_of));
    println!("{}", built.summary);
    println!(
        "generated in {:.1} s (not part of any figure below; the engine read the facts as they came)",
        built.generate_s
    );
    let [read, seal, derive] = built.build_phases;
    println!(
        "full build from the facts: {:.2} s (reading the facts in {read:.2} s, sealing them into members' runs {seal:.2} s, deriving {derive:.2} s); CPU time {:.2} s",
        built.build_s, built.build_cpu_s
    );
    let [catalogue, members, tickets, returns, checks] = built.read_by_kind;
    let [_, members_cpu, tickets_cpu, returns_cpu, checks_cpu] = built.read_cpu_by_kind;
    println!(
        "  of which reading: stores and products {:.0} ms, members {members:.2} s, tickets and lines {tickets:.2} s, returns {returns:.2} s, health checks {checks:.2} s",
        catalogue * 1000.0
    );
    // Wall above CPU: the reading thread waited (for a core, or a lock).
    println!(
        "  the reading thread's CPU time: members {members_cpu:.2} s, tickets and lines {tickets_cpu:.2} s, returns {returns_cpu:.2} s, health checks {checks_cpu:.2} s"
    );
    println!("  of which sealing: {}", phases(&built.build_seal_timings));
    println!("  of which deriving: {}", phases(&built.build_timings));
    let [read, seal, derive] = built.day_phases;
    println!(
        "the first held-back day's update ({} tickets, {} member lines) and recompute: {:.3} s (reading in {:.0} ms, sealing {:.0} ms, recompute {:.0} ms); CPU time {:.2} s",
        built.day_tickets,
        built.day_lines,
        built.day_s,
        read * 1000.0,
        seal * 1000.0,
        derive * 1000.0,
        built.day_cpu_s
    );
    println!("  of which sealing: {}", phases(&built.day_seal_timings));
    println!("  of which the recompute: {}", phases(&built.day_timings));
    if built.updates.len() > 1 {
        let walls: Vec<f64> = built.updates.iter().map(|u| u.2 * 1000.0).collect();
        println!(
            "{} days read in one update each: p50 {:.0} ms, max {:.0} ms, mean {:.0} ms",
            walls.len(),
            percentile(&walls, 0.5),
            walls.iter().copied().fold(0.0, f64::max),
            walls.iter().sum::<f64>() / walls.len() as f64
        );
        for (day, tickets, wall, seal, recompute, seal_phases) in &built.updates {
            println!(
                "  {}: {tickets} tickets, {:.0} ms (sealing {:.0} ms: {seal_phases}; recompute {:.0} ms)",
                date_of_day(*day),
                wall * 1000.0,
                seal * 1000.0,
                recompute * 1000.0
            );
        }
    }
    println!(
        "resident memory after build: {:.0} MB (peak so far, generator included: {:.0} MB)",
        built.rss_mb, built.peak_rss_mb
    );
    let held: Vec<String> =
        engine.data.footprint().iter().map(|(name, bytes)| format!("{name} {:.0}", *bytes as f64 / 1e6)).collect();
    println!("  of which the engine's facts and indexes (MB): {}", held.join(", "));
    let perf = PerfControl::from_env();
    perf.send("counts", "enable");
    let timed = time_counts(engine, &d, b.repeat);
    perf.send("counts", "disable");

    // A restart: the snapshot written now, read back (and derived from) once the engine is gone.
    eprintln!("writing a snapshot ...");
    std::fs::create_dir_all(&b.dir)?;
    let stem = stem(b);
    let snap = snapshot_path(b);
    let started = Instant::now();
    let w = CompanyEngine::write_snapshot(&engine.data, std::io::BufWriter::new(std::fs::File::create(&snap)?))?;
    w.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
    let snap_write_s = started.elapsed().as_secs_f64();
    let snap_mb = std::fs::metadata(&snap)?.len() as f64 / 1e6;
    let duck_dir = b.dir.join(&stem);
    let queries: Vec<String> =
        QUERIES.iter().map(|(_, sql)| expand_sql(sql, as_of, &engine.taxonomy)).collect::<Result<_>>()?;
    if b.duckdb {
        eprintln!("writing the facts as CSV for DuckDB ...");
        write_csv(engine, &duck_dir)?;
    }
    drop(d);
    drop(built.engine);
    eprintln!("restarting from the snapshot ...");
    // The restart's own peak: Linux resets the high-water mark of resident memory on "5".
    let own_peak = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let restart = restart(&snap, as_of);
    let restart_peak = own_peak.then(peak_rss_mb);
    if b.snapshot == SnapshotUse::Remove {
        std::fs::remove_file(&snap)?;
    }
    let restart = restart?;

    let mut duck_failed = false;
    let duck = if b.duckdb {
        // DuckDB gets the machine's memory to itself.
        let scripts = scripts.as_deref().expect("found when DuckDB is asked for");
        match run_duckdb(scripts, queries, as_of, &duck_dir, b.repeat) {
            Ok(duck) => Some(duck),
            Err(e) => {
                // The engine's own figures are still printed below.
                eprintln!("DuckDB's side failed: {e:#}");
                duck_failed = true;
                None
            }
        }
    } else {
        None
    };

    println!(
        "restart: snapshot written in {snap_write_s:.2} s ({snap_mb:.0} MB); read back in {:.2} s (file in the page cache), facts restored with their by-day indexes in {:.2} s, derived in {:.2} s — {:.2} s in all; {}",
        restart.read_s,
        restart.restore_s,
        restart.derive_s,
        restart.read_s + restart.restore_s + restart.derive_s,
        restart_peak
            .map_or("its peak memory not measured here".to_string(), |mb| format!("its peak memory {mb:.0} MB"))
    );
    println!();
    if let Some(duck) = &duck {
        println!(
            "DuckDB {} ({} threads, memory limit {DUCKDB_MEMORY_LIMIT}): load CSV {:.2} s",
            duck.version, duck.threads, duck.load_s
        );
        println!(
            "full build: rxmember {:.2} s, DuckDB aggregation of the same lines (features, medians, grades) {:.2} s — ratio DuckDB/rxmember {:.2}",
            built.build_s,
            duck.build_s,
            duck.build_s / built.build_s
        );
        // The engine's build reads the facts in as well: beside DuckDB's load and aggregation.
        println!(
            "  with the reading in: DuckDB load + aggregation {:.2} s against rxmember's full build {:.2} s — ratio {:.2}",
            duck.load_s + duck.build_s,
            built.build_s,
            (duck.load_s + duck.build_s) / built.build_s
        );
        let [_, seal, derive] = built.build_phases;
        println!(
            "  from loaded facts (DuckDB's tables / the engine's sealed runs, as from a snapshot): rxmember derive {derive:.2} s, DuckDB {:.2} s — ratio {:.2}; with the seal (grouping lines by member) {:.2} s — ratio {:.2}",
            duck.build_s,
            duck.build_s / derive,
            seal + derive,
            duck.build_s / (seal + derive)
        );
        println!();
    }
    let mismatches = print_counts(&timed, duck.as_ref());
    if mismatches > 0 {
        bail!("{mismatches} expression(s) counted differently by rxmember and DuckDB");
    }
    if duck_failed {
        bail!("DuckDB's side failed (above): the counts are not checked");
    }
    Ok(())
}

/// The counts table (beside DuckDB's when it ran) and the figures over all counts; returns how many
/// expressions DuckDB counted differently.
fn print_counts(timed: &[(u64, Vec<f64>)], duck: Option<&Duck>) -> usize {
    println!(
        "{:>9} {:>9} {:>9} {:>10} {:>10} {:>8}  expression",
        "count", "p50 ms", "p99 ms", "DuckDB p50", "DuckDB p99", "ratio"
    );
    let mut all = Vec::new();
    let mut duck_all = Vec::new();
    let mut mismatches = 0;
    for (i, (text, _)) in QUERIES.iter().enumerate() {
        let (count, times) = &timed[i];
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        all.extend(times.iter().copied());
        match duck {
            Some(duck) => {
                let q = &duck.queries[i];
                duck_all.extend(q.times.iter().copied());
                let (d50, d99) = (percentile(&q.times, 0.5), percentile(&q.times, 0.99));
                let agree = if q.count == *count { "" } else { "  ≠ DuckDB count " };
                if q.count != *count {
                    mismatches += 1;
                }
                println!(
                    "{count:>9} {p50:>9.3} {p99:>9.3} {d50:>10.2} {d99:>10.2} {:>8.0}  {text}{agree}{}",
                    d50 / p50.max(0.001),
                    if q.count != *count { q.count.to_string() } else { String::new() }
                );
            }
            None => println!("{count:>9} {p50:>9.3} {p99:>9.3} {:>10} {:>10} {:>8}  {text}", "-", "-", "-"),
        }
    }
    println!(
        "all expressions: rxmember p50 {:.3} ms, p99 {:.3} ms over {} counts",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len()
    );
    if duck.is_some() {
        println!(
            "                 DuckDB    p50 {:.2} ms, p99 {:.2} ms over {} counts; counts that differ: {mismatches}",
            percentile(&duck_all, 0.5),
            percentile(&duck_all, 0.99),
            duck_all.len()
        );
    }
    mismatches
}

/// A restart's phases, in seconds.
struct Restart {
    read_s: f64,
    restore_s: f64,
    derive_s: f64,
}

/// Reads a snapshot back, restores the facts and derives from them, as a server's restart does.
fn restart(snap: &Path, as_of: Day) -> Result<Restart> {
    let started = Instant::now();
    let bytes = std::fs::read(snap)?;
    let read_s = started.elapsed().as_secs_f64();
    let data = CompanyEngine::restore(&bytes).context("the snapshot reads back")?;
    drop(bytes);
    let restore_s = started.elapsed().as_secs_f64() - read_s;
    let engine = CompanyEngine::new(data, Taxonomy::default_pharmacy(), Settings::default(), Vec::new(), as_of);
    let derive_s = started.elapsed().as_secs_f64() - read_s - restore_s;
    drop(engine);
    Ok(Restart { read_s, restore_s, derive_s })
}

/// The engine's facts as CSV, keyed by member ordinal (days as day numbers, money in fen).
fn write_csv(engine: &CompanyEngine, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = &engine.data;
    let open = |name: &str, header: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        let path = dir.join(name);
        let mut w = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(w, "{header}")?;
        Ok(w)
    };
    let opt = |x: u32| if x == NONE_U32 { String::new() } else { x.to_string() };
    let mut w = open("members.csv", "o,gender,birthday,home_store,registered_day,sms,chronic")?;
    let d = engine.current();
    for (o, m) in data.members.iter().enumerate() {
        let reg = d.features.registered_day[o];
        writeln!(
            w,
            "{o},{},{},{},{},{},{}",
            m.gender().label_zh(),
            m.birthday().map(|b| b.to_string()).unwrap_or_default(),
            opt(data.home_store[o]),
            if reg == NONE_I32 { String::new() } else { reg.to_string() },
            m.sms_opt_in() as u8,
            m.chronic_conditions().join("|")
        )?;
    }
    w.flush()?;
    let mut w = open("visits.csv", "o,day,store,net,discount,cost,items,returned_lines")?;
    for o in 0..data.len() {
        for v in data.visits(o) {
            writeln!(
                w,
                "{o},{},{},{},{},{},{},{}",
                v.day,
                opt(v.store),
                v.net,
                v.discount,
                v.cost,
                v.items,
                v.returned_lines
            )?;
        }
    }
    w.flush()?;
    let mut w = open("purchases.csv", "o,day,product,amount")?;
    for o in 0..data.len() {
        for p in data.purchases(o) {
            writeln!(w, "{o},{},{},{}", p.day, p.product, { p.amount })?;
        }
    }
    w.flush()?;
    let mut w = open("checks.csv", "o,day,kind,abnormal")?;
    for o in 0..data.len() {
        for c in data.checks(o) {
            writeln!(w, "{o},{},{},{}", c.day, c.kind.label_zh(), c.abnormal as u8)?;
        }
    }
    w.flush()?;
    let mut w = open("products.csv", "idx,category,rx")?;
    for (i, p) in data.products.iter().enumerate() {
        writeln!(w, "{i},{},{}", p.category_code.as_deref().unwrap_or(""), p.is_prescription as u8)?;
    }
    w.flush()?;
    Ok(())
}

struct DuckQuery {
    count: u64,
    times: Vec<f64>,
}

struct Duck {
    version: String,
    threads: u64,
    load_s: f64,
    build_s: f64,
    queries: Vec<DuckQuery>,
}

/// Expands the SQL templates of [`QUERIES`]: `{A}` the as-of day; `{bought:CATEGORY:DAYS:TIMES}`,
/// `{bought_any:DAYS}`, `{checked:KIND:DAYS:TIMES}`, `{checked_abnormal:KIND:DAYS}` and
/// `{class:CATEGORY}` as member-set predicates with the engine's rules.
pub fn expand_sql(template: &str, as_of: Day, taxonomy: &Taxonomy) -> Result<String> {
    let category = |name: &str| -> Result<String> {
        let c = taxonomy.resolve(name).with_context(|| format!("unknown category {name}"))?;
        Ok(if c.is_major() {
            format!("product IN (SELECT idx FROM products WHERE category LIKE '{}%')", c.code)
        } else {
            format!("product IN (SELECT idx FROM products WHERE category = '{}')", c.code)
        })
    };
    // Days with a positive net purchase, per member, within the last `days` days.
    let bought_days = |filter: &str, days: i64| {
        format!(
            "SELECT o, count(*) AS n FROM (SELECT o, day, sum(amount) AS s FROM purchases \
             WHERE day BETWEEN {a} - {w} AND {a} {filter} GROUP BY o, day) WHERE s > 0 GROUP BY o",
            a = as_of,
            w = days - 1
        )
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').context("unclosed { in SQL template")? + start;
        let parts: Vec<&str> = rest[start + 1..end].split(':').collect();
        let num = |i: usize| -> Result<i64> { parts.get(i).context("missing argument")?.parse().context("number") };
        let text = match parts[0] {
            "A" => as_of.to_string(),
            "bought" => format!(
                "o IN (SELECT o FROM ({}) WHERE n >= {})",
                bought_days(&format!("AND {}", category(parts[1])?), num(2)?),
                num(3)?
            ),
            "bought_any" => format!("o IN (SELECT o FROM ({}))", bought_days("", num(1)?)),
            "checked" => format!(
                "o IN (SELECT o FROM checks WHERE kind = '{}' AND day BETWEEN {a} - {w} AND {a} GROUP BY o HAVING count(*) >= {})",
                parts[1],
                num(3)?,
                a = as_of,
                w = num(2)? - 1
            ),
            "checked_abnormal" => format!(
                "o IN (SELECT o FROM checks WHERE kind = '{}' AND abnormal = 1 AND day BETWEEN {a} - {w} AND {a})",
                parts[1],
                a = as_of,
                w = num(2)? - 1
            ),
            // The default class rule: positive purchases on ≥ 2 days in 365, or one purchase day
            // making ≥ 30% of the member's net spend in the window.
            "class" => format!(
                "o IN (SELECT k.o FROM (SELECT o, count(*) FILTER (WHERE s > 0) AS days, sum(s) AS spend FROM \
                 (SELECT o, day, sum(amount) AS s FROM purchases WHERE day BETWEEN {a} - 364 AND {a} AND {cat} GROUP BY o, day) \
                 GROUP BY o) k JOIN (SELECT o, sum(amount) AS t FROM purchases WHERE day BETWEEN {a} - 364 AND {a} GROUP BY o) t \
                 USING (o) WHERE k.days >= 2 OR (k.days >= 1 AND t.t > 0 AND k.spend * 100.0 >= 30.0 * t.t))",
                a = as_of,
                cat = category(parts[1])?
            ),
            other => bail!("unknown SQL template {other}"),
        };
        out.push_str(&text);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The directory holding `engine_duckdb.py`: `bench/` under the working directory, else the one of
/// the source tree this binary was built from.
fn scripts_dir() -> Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench");
    [PathBuf::from("bench"), built_from].into_iter().find(|d| d.join(DUCKDB_SCRIPT).is_file()).with_context(|| {
        format!(
            "bench/{DUCKDB_SCRIPT} is not under the working directory nor the source tree this binary was \
                 built from ({}): run the bench from the repository's root, or pass --no-duckdb",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

const DUCKDB_SCRIPT: &str = "engine_duckdb.py";

/// Runs the DuckDB side (the script in `scripts`, the `duckdb` package installed into
/// `scripts/.venv` on first use).
fn run_duckdb(scripts: &Path, queries: Vec<String>, as_of: Day, dir: &Path, repeat: usize) -> Result<Duck> {
    let venv = scripts.join(".venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("installing the duckdb Python package into {} ...", venv.display());
        let ok = std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv).status()?.success()
            && std::process::Command::new(venv.join("bin/pip")).args(["install", "-q", "duckdb"]).status()?.success();
        if !ok {
            bail!("could not install duckdb into {}", venv.display());
        }
    }
    let job = serde_json::json!({
        "dir": dir,
        "as_of": as_of,
        "as_of_date": date_of_day(as_of).to_string(),
        "repeat": repeat,
        "memory_limit": DUCKDB_MEMORY_LIMIT,
        "temp_directory": dir.join("duckdb.tmp"),
        "queries": queries,
    });
    let job_path = dir.join("job.json");
    std::fs::write(&job_path, job.to_string())?;
    eprintln!("DuckDB: loading and answering ...");
    let script = scripts.join(DUCKDB_SCRIPT);
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&job_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed", script.display());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading DuckDB's answers")?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Duck {
        version: v["version"].as_str().unwrap_or("?").to_string(),
        threads: v["threads"].as_u64().unwrap_or(0),
        load_s: f("load_s"),
        build_s: f("build_s"),
        queries: v["queries"]
            .as_array()
            .context("queries")?
            .iter()
            .map(|q| DuckQuery {
                count: q["count"].as_u64().unwrap_or(u64::MAX),
                times: q["times_ms"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|x| x.as_f64()).collect())
                    .unwrap_or_default(),
            })
            .collect(),
    })
}
