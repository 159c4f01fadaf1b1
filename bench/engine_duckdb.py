"""DuckDB's side of `rxmember bench engine --size ...` (run by it; not meant to be run by hand).

Reads the job file the benchmark wrote (CSV directory, as-of day, SQL per question), loads the
facts, computes the same per-member features, RFM grades and activity levels the engine computes
(the rules of crates/engine/src/{features,grades}.rs in SQL), then answers every question
`repeat` times. Prints one JSON object: version, threads, load_s, build_s, and per question the
count and the times in milliseconds.
"""

import json
import sys
import time

import duckdb

job = json.load(open(sys.argv[1]))
d = job["dir"]
A = job["as_of"]
as_of_date = job["as_of_date"]
con = duckdb.connect()
# Set by the benchmark so that DuckDB stays within the machine's memory (spilling to disk past it).
if job.get("memory_limit"):
    con.execute(f"SET memory_limit = '{job['memory_limit']}'")
if job.get("temp_directory"):
    con.execute(f"SET temp_directory = '{job['temp_directory']}'")

TABLES = {
    "members": "o INTEGER, gender VARCHAR, birthday DATE, home_store INTEGER, registered_day INTEGER, sms INTEGER, chronic VARCHAR",
    "visits": "o INTEGER, day INTEGER, store INTEGER, net BIGINT, discount BIGINT, cost BIGINT, items INTEGER, returned_lines INTEGER",
    "purchases": "o INTEGER, day INTEGER, product INTEGER, amount BIGINT",
    "checks": "o INTEGER, day INTEGER, kind VARCHAR, abnormal INTEGER",
    "products": "idx INTEGER, category VARCHAR, rx INTEGER",
}

t = time.perf_counter()
for name, cols in TABLES.items():
    columns = "{" + ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in cols.split(", ")) + "}"
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{d}/{name}.csv', header = true, columns = {columns})")
load_s = time.perf_counter() - t

# The engine's features as of A: tickets net of returns; a ticket counts while some of it is kept.
FEATURES = f"""
CREATE TABLE f AS
WITH v AS (
  SELECT o, day, net, greatest(items - returned_lines, 0) AS items, returned_lines,
         discount, cost
  FROM visits WHERE day <= {A}),
a AS (
  SELECT o,
    count(*) FILTER (WHERE net > 0) AS tickets_total,
    coalesce(sum(net) FILTER (WHERE net > 0), 0) AS spend_total,
    min(day) FILTER (WHERE net > 0) AS first_day,
    max(day) FILTER (WHERE net > 0) AS last_day,
    count(*) FILTER (WHERE net > 0 AND day > {A} - 365) AS frequency_12m,
    coalesce(sum(net) FILTER (WHERE net > 0 AND day > {A} - 365), 0) AS monetary_12m,
    coalesce(sum(items) FILTER (WHERE net > 0 AND day > {A} - 365), 0) AS items_12m,
    coalesce(sum(discount) FILTER (WHERE net > 0 AND day > {A} - 365), 0) AS discount_12m,
    coalesce(sum(cost) FILTER (WHERE net > 0 AND day > {A} - 365), 0) AS cost_12m,
    coalesce(sum(returned_lines) FILTER (WHERE day > {A} - 365), 0) AS returns_12m
  FROM v GROUP BY o),
c AS (SELECT o, count(*) AS checks_12m FROM checks WHERE day <= {A} AND day > {A} - 365 GROUP BY o)
SELECT m.*,
  coalesce(a.tickets_total, 0) AS tickets_total, coalesce(a.spend_total, 0) AS spend_total,
  a.first_day, a.last_day, {A} - a.last_day AS recency_days,
  coalesce(a.frequency_12m, 0) AS frequency_12m, coalesce(a.monetary_12m, 0) AS monetary_12m,
  coalesce(a.items_12m, 0) AS items_12m, coalesce(a.discount_12m, 0) AS discount_12m,
  coalesce(a.cost_12m, 0) AS cost_12m, coalesce(a.returns_12m, 0) AS returns_12m,
  coalesce(c.checks_12m, 0) AS checks_12m,
  CASE WHEN m.birthday IS NULL OR m.birthday > DATE '{as_of_date}' THEN NULL
       ELSE date_diff('year', m.birthday, DATE '{as_of_date}')
            - CASE WHEN strftime(m.birthday, '%m%d') > strftime(DATE '{as_of_date}', '%m%d') THEN 1 ELSE 0 END
  END AS age
FROM members m LEFT JOIN a USING (o) LEFT JOIN c USING (o)
"""

# RFM: thresholds are the upper medians over effective members; "high" is strictly better.
GRADES = f"""
CREATE TABLE g AS
WITH e AS (SELECT recency_days, frequency_12m, monetary_12m FROM f WHERE frequency_12m > 0),
n AS (SELECT count(*) // 2 AS mid FROM e),
t AS (SELECT
  (SELECT recency_days FROM e ORDER BY recency_days LIMIT 1 OFFSET (SELECT mid FROM n)) AS r,
  (SELECT frequency_12m FROM e ORDER BY frequency_12m LIMIT 1 OFFSET (SELECT mid FROM n)) AS fq,
  (SELECT monetary_12m FROM e ORDER BY monetary_12m LIMIT 1 OFFSET (SELECT mid FROM n)) AS mo)
SELECT f.*,
  CASE WHEN f.frequency_12m = 0 THEN '无效会员'
       WHEN f.monetary_12m > t.mo AND f.frequency_12m > t.fq AND f.recency_days < t.r THEN '重要保持'
       WHEN f.monetary_12m > t.mo AND f.recency_days < t.r THEN '重要发展'
       WHEN f.monetary_12m > t.mo THEN '重要挽留'
       WHEN f.frequency_12m > t.fq THEN '一般重要'
       WHEN f.recency_days < t.r THEN '一般'
       ELSE '无价值' END AS grade,
  CASE WHEN f.last_day IS NULL THEN '未消费'
       WHEN f.recency_days >= 365 THEN '流失'
       WHEN f.recency_days >= 180 THEN '沉睡'
       WHEN {A} - f.first_day < 90 THEN '新会员'
       WHEN f.frequency_12m >= 6 THEN '核心'
       ELSE '活跃' END AS activity
FROM f, t
"""

t = time.perf_counter()
con.execute(FEATURES)
con.execute(GRADES)
build_s = time.perf_counter() - t

answers = []
for sql in job["queries"]:
    q = f"SELECT count(*) FROM g WHERE {sql}"
    times = []
    count = None
    for _ in range(job["repeat"]):
        t = time.perf_counter()
        count = con.execute(q).fetchone()[0]
        times.append((time.perf_counter() - t) * 1000.0)
    answers.append({"count": count, "times_ms": times})

print(json.dumps({
    "version": duckdb.__version__,
    "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
    "load_s": load_s,
    "build_s": build_s,
    "queries": answers,
}))
