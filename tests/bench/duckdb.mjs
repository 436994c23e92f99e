// DuckDB's side of the pit and backfill benchmarks (tests/bench/run.sh): generates their input
// files and runs the reference queries. Prints one JSON line per measurement.
//
// Usage (the package @duckdb/node-api is resolved from $BENCH_DUCKDB_DIR, else from the current
// directory; run.sh installs it there with npm):
//   node duckdb.mjs pit-data FEATURES_CSV EVENTS_CSV ROWS ENTITIES EVENTS END_EPOCH_S
//   node duckdb.mjs asof FEATURES_CSV EVENTS_CSV OUT_CSV
//   node duckdb.mjs backfill-data CSV PARQUET ROWS ENTITIES END_EPOCH_S
//   node duckdb.mjs scan FILE count|all
//   node duckdb.mjs version
//
// Generated data is deterministic (hash of the row number, no random()). Timestamps are
// RFC 3339 text in UTC with microseconds in CSV, TIMESTAMP (microseconds) in Parquet.
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(path.join(process.env.BENCH_DUCKDB_DIR || process.cwd(), 'x.js'));
const { DuckDBInstance } = await import(pathToFileURL(require.resolve('@duckdb/node-api')).href);

const SPAN_DAYS = 30;
const TS_TEXT = "strftime(%s, '%Y-%m-%dT%H:%M:%S.%fZ')";

// SQL string literal.
const lit = (s) => "'" + String(s).replace(/'/g, "''") + "'";
const tsText = (e) => TS_TEXT.replace('%s', e);
const int = (s, name) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer: ${s}`);
    return v;
};

async function open() {
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    await con.run("SET TimeZone = 'UTC'");
    return con;
}

// Runs sql: [wall seconds, rows, CPU seconds of this process meanwhile (all DuckDB threads)].
async function timed(con, sql) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = await con.runAndReadAll(sql);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    return [s, r.getRows(), (c.user + c.system) / 1e6];
}

async function threads(con) {
    const [, rows] = await timed(con, "SELECT current_setting('threads')");
    return Number(rows[0][0]);
}

// Feature rows: `rows` over `entities` users, one row every span/rows, so every timestamp is
// distinct (no ties for a point-in-time join to break); events: `events` lookups at random
// times of the same span for random users (some of whom have no row before that time, or
// none at all), in random time order.
async function pitData(featuresCsv, eventsCsv, rows, entities, events, end) {
    const con = await open();
    const start = end - SPAN_DAYS * 86400;
    const step = Math.floor(SPAN_DAYS * 86400 * 1e6 / rows);
    const user = (h) => `'u' || lpad((${h} % ${entities})::VARCHAR, 8, '0')`;
    const t0 = process.hrtime.bigint();
    await con.run(`COPY (
        SELECT ${user('hash(i)')} AS user_id,
               ${tsText(`make_timestamp(${start * 1e6}::BIGINT + i * ${step})`)} AS ts,
               (hash(i * 3 + 1) % 1000000) / 100.0 AS amount,
               (hash(i * 5 + 2) % 1000)::BIGINT AS qty,
               'm' || (hash(i * 7 + 3) % 500)::VARCHAR AS merchant
        FROM range(${rows}) r(i) ORDER BY i
    ) TO ${lit(featuresCsv)} (HEADER, QUOTE '', ESCAPE '')`);
    await con.run(`COPY (
        SELECT j AS event_id, ${user('hash(j + 1000000007)')} AS user_id,
               ${tsText(`make_timestamp(${start * 1e6}::BIGINT + (hash(j * 11 + 5) % ${SPAN_DAYS * 86400 * 1e6})::BIGINT)`)} AS timestamp
        FROM range(${events}) r(j) ORDER BY j
    ) TO ${lit(eventsCsv)} (HEADER, QUOTE '', ESCAPE '')`);
    console.log(JSON.stringify({ tool: 'duckdb', step: 'pit-data', rows, entities, events,
                                 seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
}

// The training set with an ASOF JOIN: for each event the user's latest feature row at or
// before the event's time; event columns first, input order kept, CSV out.
async function asof(featuresCsv, eventsCsv, outCsv) {
    const t0 = process.hrtime.bigint();
    const con = await open();
    await con.run(`COPY (
        SELECT e.event_id, e.user_id, e.timestamp,
               f.amount AS last_tx__amount, f.qty AS last_tx__qty, f.merchant AS last_tx__merchant
        FROM (SELECT *, timestamp::TIMESTAMPTZ AS t FROM read_csv(${lit(eventsCsv)}, header = true,
                columns = {'event_id': 'BIGINT', 'user_id': 'VARCHAR', 'timestamp': 'VARCHAR'})) e
        ASOF LEFT JOIN read_csv(${lit(featuresCsv)}, header = true,
                columns = {'user_id': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'amount': 'DOUBLE',
                           'qty': 'BIGINT', 'merchant': 'VARCHAR'}) f
          ON e.user_id = f.user_id AND e.t >= f.ts
        ORDER BY e.event_id
    ) TO ${lit(outCsv)} (HEADER)`);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ tool: 'duckdb', step: 'asof', threads: await threads(con), seconds }));
}

// The backfill input: `rows` rows over `entities` ids in time order over the 30 days before
// `end`, one column of each common type; the same rows as CSV and as Parquet (DuckDB's
// defaults: Snappy, row groups of 122,880 rows).
async function backfillData(csv, parquet, rows, entities, end) {
    const con = await open();
    const start = end - SPAN_DAYS * 86400;
    const step = Math.floor(SPAN_DAYS * 86400 * 1e6 / rows);
    const t0 = process.hrtime.bigint();
    await con.run(`CREATE TABLE t AS
        SELECT (hash(i) % ${entities})::BIGINT AS id,
               make_timestamp(${start * 1e6}::BIGINT + i * ${step}) AS ts,
               (hash(i * 3 + 1) % 2000001)::BIGINT - 1000000 AS i64,
               (hash(i * 5 + 2) % 100000000) / 1000.0 AS f64,
               'item-' || (hash(i * 7 + 3) % 5000)::VARCHAR AS s,
               hash(i * 11 + 4) % 2 = 0 AS b
        FROM range(${rows}) r(i) ORDER BY i`);
    await con.run(`COPY (SELECT id, ${tsText('ts')} AS ts, i64, f64, s, b FROM t)
                   TO ${lit(csv)} (HEADER, QUOTE '', ESCAPE '')`);
    await con.run(`COPY t TO ${lit(parquet)} (FORMAT parquet)`);
    console.log(JSON.stringify({ tool: 'duckdb', step: 'backfill-data', rows, entities,
                                 seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
}

// Reading a backfill file: `count` is SELECT count(*) (on Parquet it reads only the footer
// metadata); `all` decodes every column of every row.
async function scan(file, query) {
    const con = await open();
    const format = file.endsWith('.parquet') ? 'parquet' : 'csv';
    const src = format === 'parquet' ? `read_parquet(${lit(file)})`
        : `read_csv(${lit(file)}, header = true, columns = {'id': 'BIGINT', 'ts': 'TIMESTAMPTZ',
               'i64': 'BIGINT', 'f64': 'DOUBLE', 's': 'VARCHAR', 'b': 'BOOLEAN'})`;
    const sql = query === 'count' ? `SELECT count(*) FROM ${src}`
        : `SELECT count(id), min(ts), max(ts), sum(i64), sum(f64), sum(length(s)), count_if(b) FROM ${src}`;
    const [seconds, rows, cpu] = await timed(con, sql);
    console.log(JSON.stringify({ tool: 'duckdb', step: query, format, threads: await threads(con),
                                 rows: Number(rows[0][0]), seconds, query_cpu_s: cpu }));
}

async function version() {
    const con = await open();
    const [, rows] = await timed(con, 'SELECT version()');
    console.log(rows[0][0]);
}

const [cmd, ...a] = process.argv.slice(2);
if (cmd === 'pit-data' && a.length === 6)
    await pitData(a[0], a[1], int(a[2], 'ROWS'), int(a[3], 'ENTITIES'), int(a[4], 'EVENTS'), int(a[5], 'END'));
else if (cmd === 'asof' && a.length === 3)
    await asof(a[0], a[1], a[2]);
else if (cmd === 'backfill-data' && a.length === 5)
    await backfillData(a[0], a[1], int(a[2], 'ROWS'), int(a[3], 'ENTITIES'), int(a[4], 'END'));
else if (cmd === 'scan' && a.length === 2 && (a[1] === 'count' || a[1] === 'all'))
    await scan(a[0], a[1]);
else if (cmd === 'version' && a.length === 0)
    await version();
else {
    console.error('usage: node duckdb.mjs pit-data|asof|backfill-data|scan|version ARGS (see the top of the file)');
    process.exit(2);
}
