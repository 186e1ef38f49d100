/**
 * AOF engine benchmark (not a test). Run: node --import tsx bench/aof.ts [--secs 3] [--runs 3] [--quick]
 *
 * 1. Disk probe: what the file system itself allows, with synchronous calls
 *    from one thread: fdatasync/s with one 100-byte append per fdatasync, and
 *    records/s when 100 appends share one fdatasync; plus the first figure
 *    through libuv's thread pool (what any non-blocking writer pays).
 * 2. The engine: `SET key:<n> <100 bytes>` records from 1 and from 50
 *    concurrent writers under always, everysec and no. A writer appends, waits
 *    for its acknowledgement, appends the next: under `always` the ack is
 *    waitDurable (fsynced), under everysec/no it is waitWritten (Redis's reply
 *    point). Latency append -> ack for every record; latency append -> durable
 *    (waitDurable) for one record in 64 (under `no`, "durable" means written).
 * Each configuration runs `runs` times for `secs` seconds (or 5M records); the
 * medians are printed and written to bench/results/aof-<time>.json.
 * Options: --only <policy>:<writers> (one configuration), --no-probe (skip the disk probe).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { type AppendFsync, DEFAULT_AOF_CONFIG } from '../src/aof/config.js';
import { AofEngine } from '../src/aof/engine.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const QUICK = args.includes('--quick');
const SECS = option('--secs', QUICK ? 1 : 3);
const RUNS = option('--runs', QUICK ? 1 : 3);
/** `--only everysec:50` runs one configuration (for profiling with --cpu-prof). */
const ONLY = ((): string | null => {
  const i = args.indexOf('--only');
  return i >= 0 ? (args[i + 1] ?? null) : null;
})();
const SKIP_PROBE = args.includes('--no-probe');
const MAX_RECORDS = 5_000_000;
/** One record in this many also measures append -> durable; few enough that the bench's own promises stay cheap. */
const DURABLE_SAMPLE_EVERY = 64;

const here = path.dirname(fileURLToPath(import.meta.url));
const VALUE = 'v'.repeat(100);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

// --- disk probe ---------------------------------------------------------------------

interface ProbeResult {
  fdatasyncPerSec: number;
  fdatasyncP50Ms: number;
  groupRecordsPerSec: number;
  groupBatchP50Ms: number;
  /** The same as fdatasyncPerSec through libuv's thread pool (fs.write + fs.fdatasync callbacks): the ceiling of any non-blocking writer. */
  asyncFdatasyncPerSec: number;
  asyncFdatasyncP50Ms: number;
  asyncFdatasyncP99Ms: number;
}

function writeAsync(fd: number, buf: Buffer): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

async function probeAsync(dir: string, secs: number, record: Buffer): Promise<number[]> {
  const file = path.join(dir, 'probe-c.dat');
  const fd = fs.openSync(file, 'a');
  const lat: number[] = [];
  const t0 = performance.now();
  const deadline = t0 + secs * 1000;
  for (let i = 0; i < 1_000_000 && performance.now() < deadline; i++) {
    const s = performance.now();
    await writeAsync(fd, record);
    await fdatasyncAsync(fd);
    lat.push(performance.now() - s);
  }
  const elapsed = performance.now() - t0;
  fs.closeSync(fd);
  fs.unlinkSync(file);
  lat.sort((a, b) => a - b);
  return [lat.length / (elapsed / 1000), median(lat), lat[Math.floor(lat.length * 0.99)] ?? Number.NaN];
}

async function probeDisk(dir: string, secs: number): Promise<ProbeResult> {
  const record = Buffer.from(`*3\r\n$3\r\nSET\r\n$10\r\nkey:000000\r\n$62\r\n${'x'.repeat(62)}\r\n`);
  // (a) one append + fdatasync
  const fileA = path.join(dir, 'probe-a.dat');
  let fd = fs.openSync(fileA, 'a');
  const latA: number[] = [];
  let t0 = performance.now();
  let deadline = t0 + secs * 1000;
  for (let i = 0; i < 1_000_000 && performance.now() < deadline; i++) {
    const s = performance.now();
    fs.writeSync(fd, record);
    fs.fdatasyncSync(fd);
    latA.push(performance.now() - s);
  }
  let elapsed = performance.now() - t0;
  fs.closeSync(fd);
  fs.unlinkSync(fileA);
  const fdatasyncPerSec = latA.length / (elapsed / 1000);
  // (b) 100 appends, one fdatasync
  const fileB = path.join(dir, 'probe-b.dat');
  fd = fs.openSync(fileB, 'a');
  const latB: number[] = [];
  t0 = performance.now();
  deadline = t0 + secs * 1000;
  for (let i = 0; i < 1_000_000 && performance.now() < deadline; i++) {
    const s = performance.now();
    for (let j = 0; j < 100; j++) fs.writeSync(fd, record);
    fs.fdatasyncSync(fd);
    latB.push(performance.now() - s);
  }
  elapsed = performance.now() - t0;
  fs.closeSync(fd);
  fs.unlinkSync(fileB);
  const [asyncPerSec, asyncP50, asyncP99] = await probeAsync(dir, secs, record);
  return {
    fdatasyncPerSec,
    fdatasyncP50Ms: median(latA),
    groupRecordsPerSec: (latB.length * 100) / (elapsed / 1000),
    groupBatchP50Ms: median(latB),
    asyncFdatasyncPerSec: asyncPerSec as number,
    asyncFdatasyncP50Ms: asyncP50 as number,
    asyncFdatasyncP99Ms: asyncP99 as number,
  };
}

// --- engine runs ----------------------------------------------------------------------

interface EngineResult {
  records: number;
  recordsPerSec: number;
  ackP50Ms: number;
  ackP99Ms: number;
  durableP50Ms: number;
  durableP99Ms: number;
  batches: number;
  /** aof_delayed_fsync at the end of the run (everysec writes that did not wait for a slow fsync). */
  delayedFsyncs: number;
}

async function runEngine(
  dir: string,
  policy: AppendFsync,
  writers: number,
  secs: number,
): Promise<EngineResult> {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  const engine = await AofEngine.open(
    { ...DEFAULT_AOF_CONFIG, dir, appendfsync: policy },
    {},
    { record: () => {} },
  );
  const ackLatency = new Float64Array(MAX_RECORDS);
  const durableLatency = new Float64Array(Math.ceil(MAX_RECORDS / DURABLE_SAMPLE_EVERY) + writers);
  let acks = 0;
  let durables = 0;
  let appended = 0;
  const waitAck = policy === 'always' ? engine.waitDurable.bind(engine) : engine.waitWritten.bind(engine);
  const started = performance.now();
  const deadline = started + secs * 1000;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; appended < MAX_RECORDS; i++) {
        if ((i & 63) === 0 && performance.now() >= deadline) break;
        const t = performance.now();
        const lsn = engine.append(['SET', `key:${w}:${i}`, VALUE]);
        appended++;
        if (policy !== 'always' && lsn % DURABLE_SAMPLE_EVERY === 0) {
          void engine.waitDurable(lsn).then(() => {
            durableLatency[durables++] = performance.now() - t;
          });
        }
        await waitAck(lsn);
        const ms = performance.now() - t;
        ackLatency[acks++] = ms;
        if (policy === 'always' && lsn % DURABLE_SAMPLE_EVERY === 0) durableLatency[durables++] = ms;
      }
    }),
  );
  const elapsed = performance.now() - started;
  const info = engine.info();
  // Every sampled wait resolves in LSN order, at the latest with the last record's.
  await engine.waitDurable(engine.lastLsn);
  await new Promise((resolve) => setImmediate(resolve));
  await engine.close();
  const fileBytes = fs.readFileSync(path.join(dir, 'appendonlydir', 'appendonly.aof.1.incr.aof'));
  let batches = 0;
  for (let at = fileBytes.indexOf('\n#aofq b '); at !== -1; at = fileBytes.indexOf('\n#aofq b ', at + 1))
    batches++;
  await fsp.rm(dir, { recursive: true, force: true });
  const ack = ackLatency.subarray(0, acks).sort();
  const durable = durableLatency.subarray(0, durables).sort();
  return {
    records: acks,
    recordsPerSec: acks / (elapsed / 1000),
    ackP50Ms: percentile(ack, 50),
    ackP99Ms: percentile(ack, 99),
    durableP50Ms: percentile(durable, 50),
    durableP99Ms: percentile(durable, 99),
    batches,
    delayedFsyncs: Number(info.aof_delayed_fsync ?? 0),
  };
}

// --- main --------------------------------------------------------------------------------

const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits }) : '-';

async function main(): Promise<void> {
  const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-bench-'));
  try {
    process.stdout.write(`AOF bench: ${RUNS} run(s) x ${SECS} s per configuration, scratch ${scratch}\n`);
    const probes: ProbeResult[] = [];
    for (let r = 0; r < (SKIP_PROBE ? 0 : RUNS); r++)
      probes.push(await probeDisk(scratch, Math.min(SECS, 2)));
    const probe = {
      fdatasyncPerSec: median(probes.map((p) => p.fdatasyncPerSec)),
      fdatasyncP50Ms: median(probes.map((p) => p.fdatasyncP50Ms)),
      groupRecordsPerSec: median(probes.map((p) => p.groupRecordsPerSec)),
      groupBatchP50Ms: median(probes.map((p) => p.groupBatchP50Ms)),
      asyncFdatasyncPerSec: median(probes.map((p) => p.asyncFdatasyncPerSec)),
      asyncFdatasyncP50Ms: median(probes.map((p) => p.asyncFdatasyncP50Ms)),
      asyncFdatasyncP99Ms: median(probes.map((p) => p.asyncFdatasyncP99Ms)),
    };
    process.stdout.write(
      `disk: ${fmt(probe.fdatasyncPerSec)} fdatasync/s (p50 ${fmt(probe.fdatasyncP50Ms, 3)} ms); ` +
        `100 records per fdatasync: ${fmt(probe.groupRecordsPerSec)} records/s (p50 ${fmt(probe.groupBatchP50Ms, 3)} ms/batch); ` +
        `async write+fdatasync: ${fmt(probe.asyncFdatasyncPerSec)}/s (p50 ${fmt(probe.asyncFdatasyncP50Ms, 3)}, p99 ${fmt(probe.asyncFdatasyncP99Ms, 3)} ms)\n`,
    );

    const configs: Array<{ policy: AppendFsync; writers: number }> = [];
    for (const policy of ['always', 'everysec', 'no'] as const) {
      for (const writers of [1, 50]) {
        if (ONLY === null || ONLY === `${policy}:${writers}`) configs.push({ policy, writers });
      }
    }
    const results: Array<{
      policy: AppendFsync;
      writers: number;
      runs: EngineResult[];
      median: EngineResult;
    }> = [];
    for (const c of configs) {
      const runs: EngineResult[] = [];
      for (let r = 0; r < RUNS; r++) {
        const res = await runEngine(path.join(scratch, 'engine'), c.policy, c.writers, SECS);
        runs.push(res);
        process.stdout.write(
          `  ${c.policy.padEnd(8)} c=${String(c.writers).padEnd(2)} run ${r + 1}: ${fmt(res.recordsPerSec)} rec/s, ` +
            `ack p50 ${fmt(res.ackP50Ms, 3)} p99 ${fmt(res.ackP99Ms, 3)} ms, durable p50 ${fmt(res.durableP50Ms, 1)} ms, ` +
            `${fmt(res.records / Math.max(1, res.batches), 1)} rec/batch\n`,
        );
      }
      const pick = (k: keyof EngineResult): number => median(runs.map((x) => x[k]));
      results.push({
        ...c,
        runs,
        median: {
          records: pick('records'),
          recordsPerSec: pick('recordsPerSec'),
          ackP50Ms: pick('ackP50Ms'),
          ackP99Ms: pick('ackP99Ms'),
          durableP50Ms: pick('durableP50Ms'),
          durableP99Ms: pick('durableP99Ms'),
          batches: pick('batches'),
          delayedFsyncs: pick('delayedFsyncs'),
        },
      });
    }

    process.stdout.write(
      '\n| appendfsync | writers | records/s | ack p50 ms | ack p99 ms | durable p50 ms | durable p99 ms | records/batch |\n',
    );
    process.stdout.write('|---|---|---|---|---|---|---|---|\n');
    for (const r of results) {
      const m = r.median;
      process.stdout.write(
        `| ${r.policy} | ${r.writers} | ${fmt(m.recordsPerSec)} | ${fmt(m.ackP50Ms, 3)} | ${fmt(m.ackP99Ms, 3)} | ` +
          `${fmt(m.durableP50Ms, 3)} | ${fmt(m.durableP99Ms, 3)} | ${fmt(m.records / Math.max(1, m.batches), 1)} |\n`,
      );
    }
    const get = (policy: AppendFsync, writers: number): number =>
      results.find((r) => r.policy === policy && r.writers === writers)?.median.recordsPerSec ?? Number.NaN;
    const alwaysVsEverysec = get('always', 50) / get('everysec', 50);
    const everysec = get('everysec', 50);
    process.stdout.write(
      `\nalways c=50 / everysec c=50 = ${fmt(alwaysVsEverysec * 100, 1)}% (target >= 50%)\n` +
        `everysec c=50 = ${fmt(everysec)} records/s (target >= 300,000)\n`,
    );

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = path.join(here, 'results', `aof-${stamp}.json`);
    await fsp.mkdir(path.dirname(out), { recursive: true });
    await fsp.writeFile(
      out,
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          secs: SECS,
          runs: RUNS,
          recordBytes: 100,
          probe: { runs: probes, median: probe },
          engine: results,
          targets: { alwaysVsEverysecPct: alwaysVsEverysec * 100, everysecRecordsPerSec: everysec },
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`results: ${out}\n`);
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

await main();
