#!/usr/bin/env bash
# Import throughput, side by side with raw loaders, on the demo chain's exported files:
#   rxmember → SQLite and → PostgreSQL (cleaning, validation, idempotency, reports included)
#   PostgreSQL COPY into an unindexed table (raw load, no cleaning: a ceiling, not a rival)
#   DuckDB read_csv into a table (raw columnar load)
# Writes the table to bench/results/import-<date>-<host>.md (-2, -3, ... when that exists already).
# Needs PostgreSQL at $PG (trust auth). BIN=path runs another build (e.g. the previous commit's) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${PG:-postgres://postgres@127.0.0.1:5432/postgres}"
SIZE="${SIZE:-small}"
FILES="bench/data/demo-$SIZE"

if [ -z "${BIN:-}" ]; then
    cargo build --release -q
    BIN=./target/release/rxmember
fi
[ -f "$FILES/SCTJ/sales.csv" ] || "$BIN" demo --size "$SIZE" --export "$FILES" >/dev/null

out="$(mktemp)"
"$BIN" bench import --files "$FILES" --size "$SIZE" --pg "$PG" | tee "$out"

# The peers load the same sales files (all companies; TJG's is GBK).
lines=0
for f in "$FILES"/*/sales.csv; do lines=$((lines + $(wc -l < "$f") - 1)); done

psql "$PG" -qc "DROP TABLE IF EXISTS bench_sales; CREATE UNLOGGED TABLE bench_sales (ticket_no text, line_no int, sold_at timestamp, store_code text, card_no text, clerk_code text, product_code text, quantity numeric, unit_price numeric, amount numeric, discount numeric)" >/dev/null
start=$(date +%s.%N)
for dir in "$FILES"/*/; do
    enc=UTF8; head -c 3 "$dir/sales.csv" | grep -q $'\xef\xbb\xbf' || iconv -f UTF-8 -t UTF-8 "$dir/sales.csv" >/dev/null 2>&1 || enc=GBK
    psql "$PG" -qc "\\copy bench_sales FROM '$dir/sales.csv' WITH (FORMAT csv, HEADER true, ENCODING '$enc')"
done
end=$(date +%s.%N)
pg_s=$(echo "$end - $start" | bc)
psql "$PG" -qc "DROP TABLE bench_sales" >/dev/null

venv=bench/.venv
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q duckdb; }
duck_s=$("$venv/bin/python" - "$FILES" <<'PY'
import duckdb, glob, sys, time
files = sorted(glob.glob(sys.argv[1] + "/*/sales.csv"))
con = duckdb.connect()
t = time.time()
for i, f in enumerate(files):
    raw = open(f, "rb").read()
    try:
        raw.decode("utf-8")
        path = f
    except UnicodeDecodeError:  # DuckDB reads UTF-8 only: convert GBK first (counted in the time)
        path = f + ".utf8"
        open(path, "w", encoding="utf-8").write(raw.decode("gb18030"))
    con.execute(("CREATE TABLE s AS" if i == 0 else "INSERT INTO s") + f" SELECT * FROM read_csv('{path}', header=true, all_varchar=false)")
print(f"{time.time() - t:.3f}")
PY
)

result="bench/results/import-$(date -u +%Y-%m-%d)-$(hostname)"
n=1; file="$result.md"
while [ -e "$file" ]; do n=$((n + 1)); file="$result-$n.md"; done
{
    echo "# Import throughput — $(date -u +%Y-%m-%d) on $(hostname) ($(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo
    echo "Demo chain '$SIZE' (seed 42), files exported by \`rxmember demo --export\`. Release build."
    echo
    cat "$out"
    printf '| PostgreSQL COPY (raw, unindexed, no cleaning) | sales lines | %d | %.2f | %.0f |\n' "$lines" "$pg_s" "$(echo "$lines / $pg_s" | bc -l)"
    printf '| DuckDB read_csv (raw, no cleaning) | sales lines | %d | %.2f | %.0f |\n' "$lines" "$duck_s" "$(echo "$lines / $duck_s" | bc -l)"
} > "$file"
cat "$file"
