// Generates the Parquet fixtures of tests/unit/test_filesrc.c and, beside each data set, the
// rows it holds as JSON Lines in the form core/filesrc.h yields them, so the test can compare
// row by row. The outputs are committed; CI does not run this.
//
// Regenerate (needs Node.js and network access to the npm registry):
//   mkdir -p /tmp/duck && cd /tmp/duck && npm install @duckdb/node-api
//   node /path/to/sluice/tests/data/parquet/generate.mjs
// The package is resolved from the current directory. Written with DuckDB 1.5.
//
// Files:
//   types_{uncompressed,snappy,zstd,gzip}.parquet  every supported type, nulls, lists,
//                                                  dictionary-encoded strings (types.jsonl)
//   types_v2.parquet                               the same with PARQUET_VERSION V2: data
//                                                  page v2, DELTA_* and BYTE_STREAM_SPLIT
//   multi.parquet                                  10000 rows in five row groups, zstd; the
//                                                  test computes the expected values:
//                                                  id = i, tag = alpha..delta/null by i % 5,
//                                                  val = null when i % 3 = 0 else i / 2,
//                                                  ts = 2024-01-01 + i seconds
//   pages.parquet                                  written here byte by byte, since DuckDB
//                                                  writes neither v2 data pages nor more than
//                                                  one page per small chunk: two row groups,
//                                                  four pages per column chunk (v1 and v2,
//                                                  dictionary and PLAIN pages mixed, v2 pages
//                                                  with and without compression), Snappy; the
//                                                  expected rows (pages.jsonl) come from DuckDB
//                                                  reading it back
//   truncated.parquet                              types_snappy cut short
//   corrupt_page.parquet, corrupt_footer.parquet   types_snappy with garbage in the first
//                                                  page header / in the footer metadata
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.cwd(), 'x.js'));
const { DuckDBInstance } = await import(pathToFileURL(require.resolve('@duckdb/node-api')).href);

const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const out = (f) => path.join(here, f);

await con.run(`
CREATE TABLE types AS
SELECT
  i::BIGINT AS id,
  CASE WHEN i % 7 = 3 THEN NULL ELSE i % 3 = 0 END AS b,
  CASE WHEN i % 11 = 5 THEN NULL ELSE ((i * 2654435761) % 4294967296 - 2147483648)::INTEGER END AS i32,
  CASE WHEN i = 0 THEN (-9223372036854775807::BIGINT - 1) WHEN i = 1 THEN 9223372036854775807::BIGINT
       WHEN i % 13 = 2 THEN NULL ELSE (i::BIGINT * 123456789012345 - 9007199254740993) END AS i64,
  CASE WHEN i % 17 = 4 THEN NULL ELSE (i / 7.0 - 20)::FLOAT END AS f32,
  CASE WHEN i = 2 THEN 'nan'::DOUBLE WHEN i = 3 THEN 'inf'::DOUBLE WHEN i = 4 THEN '-inf'::DOUBLE
       WHEN i = 5 THEN 1e300 WHEN i = 6 THEN 5e-324
       WHEN i % 19 = 7 THEN NULL ELSE i * 0.1 - 3.3e-5 END AS f64,
  CASE WHEN i % 5 = 1 THEN NULL WHEN i % 4 = 0 THEN 'str-' || i || ' é中😀 "q" \\ ' || chr(10) || 'x'
       ELSE 'str-' || i END AS s,
  CASE WHEN i % 9 = 8 THEN NULL ELSE ['red', 'green', 'blue', ''][i % 4 + 1] END AS color,
  CASE WHEN i % 10 = 9 THEN NULL
       ELSE TIMESTAMP '2024-02-28 23:59:58' + to_microseconds(i * 86400000123 - 90000000000000) END AS ts,
  (TIMESTAMP '1969-12-31 23:59:59' + to_milliseconds(i * 1001))::TIMESTAMP_MS AS ts_ms,
  CASE WHEN i % 6 = 5 THEN NULL
       ELSE make_timestamp_ns(1629509038996000001 + i * 7000001) END AS ts_ns,
  (TIMESTAMPTZ '2023-01-02 00:25:06+00' + to_seconds(i * 3601)) AS ts_tz,
  CASE WHEN i % 8 = 7 THEN NULL ELSE DATE '1960-03-01' + (i * 97)::INTEGER END AS dt,
  (i % 256 - 128)::TINYINT AS i8,
  (i * 200 - 30000)::SMALLINT AS i16,
  (i * 7 % 256)::UTINYINT AS u8,
  (i * 14000000)::UINTEGER AS u32,
  CASE WHEN i = 0 THEN 18446744073709551615::UBIGINT ELSE (i::UBIGINT * 61000000000000000::UBIGINT) END AS u64,
  CASE WHEN i % 12 = 11 THEN NULL ELSE (i * 1.25 - 100)::DECIMAL(4, 1) END AS dec4,
  ((i - 150) * 12345678.91)::DECIMAL(18, 2) AS dec18,
  CASE WHEN i = 1 THEN -99999999999999999999999.99999::DECIMAL(28, 5)
       ELSE ((i - 100) * 1234567890123.45678)::DECIMAL(28, 5) END AS dec28,
  CASE WHEN i % 4 = 2 THEN NULL ELSE uuid_v4_from(i) END AS u,
  CASE WHEN i % 7 = 6 THEN NULL WHEN i % 5 = 0 THEN []::INTEGER[]
       ELSE [i, CASE WHEN i % 3 = 0 THEN NULL ELSE -i END, i * 1000] END AS li,
  CASE WHEN i % 9 = 1 THEN NULL ELSE ['a' || i, 'b', NULL][1:(i % 4)] END AS ls
FROM range(300) r(i)`.replace('uuid_v4_from(i)',
  "('00000000-0000-4000-8000-' || lpad(printf('%x', i * 7919), 12, '0'))::UUID"));

// A long table: several row groups, several pages per column chunk.
await con.run(`
CREATE TABLE multi AS
SELECT i::BIGINT AS id,
       ['alpha', 'beta', 'gamma', 'delta', NULL][i % 5 + 1] AS tag,
       CASE WHEN i % 3 = 0 THEN NULL ELSE i * 0.5 END::DOUBLE AS val,
       TIMESTAMP '2024-01-01' + to_seconds(i) AS ts
FROM range(10000) r(i)`);

async function copy(table, file, opts) {
  await con.run(`COPY (SELECT * FROM ${table} ORDER BY id) TO '${out(file)}' (FORMAT parquet, ${opts})`);
}
await copy('types', 'types_uncompressed.parquet', 'COMPRESSION uncompressed');
await copy('types', 'types_snappy.parquet', 'COMPRESSION snappy');
await copy('types', 'types_zstd.parquet', 'COMPRESSION zstd');
await copy('types', 'types_gzip.parquet', 'COMPRESSION gzip');
await copy('types', 'types_v2.parquet', 'COMPRESSION snappy, PARQUET_VERSION V2');
await copy('multi', 'multi.parquet', 'COMPRESSION zstd, ROW_GROUP_SIZE 2048');

// Expected rows, written the way the reader must yield them.
function rfc3339(ns) { // ns: BigInt since the epoch
  let secs = ns / 1000000000n, frac = ns % 1000000000n;
  if (frac < 0n) { frac += 1000000000n; secs -= 1n; }
  let s = new Date(Number(secs) * 1000).toISOString().slice(0, 19);
  if (frac !== 0n) {
    let f = frac.toString().padStart(9, '0');
    if (f.endsWith('000000')) f = f.slice(0, 3); else if (f.endsWith('000')) f = f.slice(0, 6);
    s += '.' + f;
  }
  return s + 'Z';
}
function num(v) { // a float as JSON: non-finite values are strings
  if (Number.isNaN(v)) return '"NaN"';
  if (v === Infinity) return '"Infinity"';
  if (v === -Infinity) return '"-Infinity"';
  return String(v);
}
// kinds: text (verbatim JSON number text), bool, str, float, ns (timestamp as ns), list-<kind>
async function expected(sql, kinds, file) {
  const res = await con.runAndReadAll(sql);
  const names = res.columnNames();
  const lines = [];
  for (const row of res.getRows()) {
    const parts = names.map((n, k) => {
      const enc = (kind, v) => {
        if (v === null || v === undefined) return 'null';
        if (kind.startsWith('list-')) return '[' + v.items.map((x) => enc(kind.slice(5), x)).join(',') + ']';
        switch (kind) {
          case 'text': return String(v);
          case 'bool': return v ? 'true' : 'false';
          case 'str': return JSON.stringify(v);
          case 'float': return num(v);
          case 'ns': return JSON.stringify(rfc3339(BigInt(v)));
        }
        throw new Error(kind);
      };
      return JSON.stringify(n) + ':' + enc(kinds[k], row[k]);
    });
    lines.push('{' + parts.join(',') + '}');
  }
  fs.writeFileSync(out(file), lines.join('\n') + '\n');
}
await expected(`SELECT id::VARCHAR AS id, b, i32::VARCHAR AS i32, i64::VARCHAR AS i64, f32::DOUBLE AS f32,
  f64, s, color, epoch_ns(ts) AS ts, epoch_ns(ts_ms) AS ts_ms, epoch_ns(ts_ns) AS ts_ns,
  epoch_ns(ts_tz) AS ts_tz, epoch_ns(dt::TIMESTAMP) AS dt, i8::VARCHAR AS i8, i16::VARCHAR AS i16,
  u8::VARCHAR AS u8, u32::VARCHAR AS u32, u64::VARCHAR AS u64, dec4::VARCHAR AS dec4,
  dec18::VARCHAR AS dec18, dec28::VARCHAR AS dec28, u::VARCHAR AS u, li, ls
  FROM read_parquet('${out('types_snappy.parquet')}')`,
  ['text', 'bool', 'text', 'text', 'float', 'float', 'str', 'str', 'ns', 'ns', 'ns', 'ns', 'ns',
   'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'str', 'list-text', 'list-str'],
  'types.jsonl');

// Damaged files.
const good = fs.readFileSync(out('types_snappy.parquet'));
fs.writeFileSync(out('truncated.parquet'), good.subarray(0, Math.floor(good.length * 0.6)));
const badPage = Buffer.from(good);
badPage.fill(0xff, 4, 12); // the first page header of the first column chunk
fs.writeFileSync(out("corrupt_page.parquet"), badPage);
const footer = Buffer.from(good);
const flen = footer.readUInt32LE(footer.length - 8);
const start = footer.length - 8 - flen;
footer.fill(0xee, start + Math.floor(flen / 3), start + Math.floor(flen / 3) + 24);
fs.writeFileSync(out('corrupt_footer.parquet'), footer);
console.log('wrote fixtures to', here);

// ---- pages.parquet: a hand-built file (Thrift compact protocol writer below) ----
const T = { bool: 1, i32: 5, i64: 6, bin: 8, list: 9, struct: 12 };
class W {
  constructor() { this.b = []; }
  byte(x) { this.b.push(x & 255); }
  varint(n) { n = BigInt(n); while (n >= 0x80n) { this.byte(Number(n & 0x7fn) | 0x80); n >>= 7n; } this.byte(Number(n)); }
  zz(n) { n = BigInt(n); this.varint(n >= 0n ? n << 1n : ((-n) << 1n) - 1n); }
  bytes(buf) { for (const x of buf) this.byte(x); }
  buf() { return Buffer.from(this.b); }
}
function tstruct(w, fields) {
  let last = 0;
  for (const [id, t, v] of fields) {
    if (v === undefined) continue;
    const tc = t === 'bool' ? (v ? 1 : 2) : T[t];
    if (id - last > 0 && id - last <= 15) w.byte(((id - last) << 4) | tc); else { w.byte(tc); w.zz(id); }
    last = id;
    tval(w, t, v);
  }
  w.byte(0);
}
function tval(w, t, v) {
  switch (t) {
    case 'i32': case 'i64': w.zz(v); break;
    case 'bin': { const b = Buffer.from(v); w.varint(b.length); w.bytes(b); break; }
    case 'bool': break;
    case 'struct': tstruct(w, v); break;
    case 'list': {
      const [et, items] = v;
      if (items.length < 15) w.byte((items.length << 4) | T[et]); else { w.byte(0xf0 | T[et]); w.varint(items.length); }
      for (const it of items) tval(w, et, it);
    }
  }
}
function snappyLiteral(data) { // valid Snappy made of literal elements only
  const w = new W();
  w.varint(data.length);
  for (let off = 0; off < data.length; off += 65536) {
    const chunk = data.subarray(off, off + 65536), n = chunk.length - 1;
    if (n < 60) w.byte(n << 2);
    else if (n < 256) { w.byte(60 << 2); w.byte(n); }
    else { w.byte(61 << 2); w.byte(n & 255); w.byte(n >> 8); }
    w.bytes(chunk);
  }
  return w.buf();
}
function bitpacked(values, bw) { // one bit-packed run of the RLE hybrid
  const w = new W();
  const groups = Math.ceil(values.length / 8);
  w.varint((groups << 1) | 1);
  const out = Buffer.alloc(groups * bw);
  values.forEach((v, i) => { for (let b = 0; b < bw; b++) if ((v >> b) & 1) { const bit = i * bw + b; out[bit >> 3] |= 1 << (bit & 7); } });
  w.bytes(out);
  return w.buf();
}
const le32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const dictWords = ['ant', 'bee', 'cat', 'dog'];
const ROWS = 1000, PAGES = 4, PER = ROWS / PAGES;
const rowValue = (g, i) => ({
  id: BigInt(g * ROWS + i),
  name: i % 10 === 3 ? null : dictWords[(g + i) % 4],
  score: i % 4 === 1 ? null : i * 1.5 - 7.25,
});
const parts = [Buffer.from('PAR1')];
let fileOff = 4;
const emit = (b) => { parts.push(b); fileOff += b.length; };
function page(hdrFields, body) { const w = new W(); tstruct(w, hdrFields); emit(w.buf()); emit(body); }
const rowGroups = [];
for (let g = 0; g < 2; g++) {
  const cols = [];
  for (const col of ['id', 'name', 'score']) {
    const start = fileOff;
    let dictOff;
    const encodings = new Set([0, 3]);
    if (col === 'name') { // dictionary page
      dictOff = fileOff;
      const plain = Buffer.concat(dictWords.map((s) => Buffer.concat([le32(s.length), Buffer.from(s)])));
      const comp = snappyLiteral(plain);
      page([[1, 'i32', 2], [2, 'i32', plain.length], [3, 'i32', comp.length],
            [7, 'struct', [[1, 'i32', dictWords.length], [2, 'i32', 0]]]], comp);
      encodings.add(8);
    }
    const dataOff = fileOff;
    for (let p = 0; p < PAGES; p++) {
      const rows = [];
      for (let i = p * PER; i < (p + 1) * PER; i++) rows.push(rowValue(g, i)[col]);
      const present = rows.filter((v) => v !== null);
      const defs = col === 'id' ? null : bitpacked(rows.map((v) => (v === null ? 0 : 1)), 1);
      const useDict = col === 'name' && p % 2 === 0;
      let values;
      if (col === 'id') values = Buffer.concat(present.map((v) => { const b = Buffer.alloc(8); b.writeBigInt64LE(v); return b; }));
      else if (col === 'score') values = Buffer.concat(present.map((v) => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b; }));
      else if (useDict) values = Buffer.concat([Buffer.from([2]), bitpacked(present.map((s) => dictWords.indexOf(s)), 2)]);
      else values = Buffer.concat(present.map((s) => Buffer.concat([le32(s.length), Buffer.from(s)])));
      const enc = useDict ? 8 : 0;
      if (p < 2) { // data page v1: levels with a length prefix, all compressed
        const raw = defs ? Buffer.concat([le32(defs.length), defs, values]) : values;
        const comp = snappyLiteral(raw);
        page([[1, 'i32', 0], [2, 'i32', raw.length], [3, 'i32', comp.length],
              [5, 'struct', [[1, 'i32', rows.length], [2, 'i32', enc], [3, 'i32', 3], [4, 'i32', 3]]]], comp);
      } else { // data page v2: levels stay uncompressed; page 3 stores values uncompressed
        const lv = defs || Buffer.alloc(0);
        const compressed = p === 3;
        const body = compressed ? snappyLiteral(values) : values;
        page([[1, 'i32', 3], [2, 'i32', lv.length + values.length], [3, 'i32', lv.length + body.length],
              [8, 'struct', [[1, 'i32', rows.length], [2, 'i32', rows.length - present.length],
                             [3, 'i32', rows.length], [4, 'i32', enc], [5, 'i32', lv.length],
                             [6, 'i32', 0], [7, 'bool', compressed]]]], Buffer.concat([lv, body]));
      }
    }
    const size = fileOff - start;
    const type = col === 'id' ? 2 : col === 'name' ? 6 : 5;
    cols.push([[2, 'i64', start], [3, 'struct', [
      [1, 'i32', type], [2, 'list', ['i32', [...encodings]]], [3, 'list', ['bin', [col]]],
      [4, 'i32', 1], [5, 'i64', ROWS], [6, 'i64', size], [7, 'i64', size],
      [9, 'i64', dataOff], [11, 'i64', dictOff]]]]);
  }
  rowGroups.push([[1, 'list', ['struct', cols]], [2, 'i64', 0], [3, 'i64', ROWS]]);
}
const meta = new W();
tstruct(meta, [
  [1, 'i32', 1],
  [2, 'list', ['struct', [
    [[4, 'bin', 'schema'], [5, 'i32', 3]],
    [[1, 'i32', 2], [3, 'i32', 0], [4, 'bin', 'id']],
    [[1, 'i32', 6], [3, 'i32', 1], [4, 'bin', 'name'], [6, 'i32', 0], [10, 'struct', [[1, 'struct', []]]]],
    [[1, 'i32', 5], [3, 'i32', 1], [4, 'bin', 'score']]]]],
  [3, 'i64', 2 * ROWS],
  [4, 'list', ['struct', rowGroups]],
  [6, 'bin', 'sluice tests/data/parquet/generate.mjs']]);
const mb = meta.buf();
emit(mb);
emit(le32(mb.length));
emit(Buffer.from('PAR1'));
fs.writeFileSync(out('pages.parquet'), Buffer.concat(parts));
await expected(`SELECT id::VARCHAR AS id, name, score FROM read_parquet('${out('pages.parquet')}')`,
  ['text', 'str', 'float'], 'pages.jsonl');
console.log('wrote pages.parquet');
