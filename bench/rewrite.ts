/**
 * AOF rewrite benchmark (not a test). Run: npm run build && node --import tsx bench/rewrite.ts [--keys 1000000] [--no-redis]
 *
 * With `keys` keys of 100-byte values (`SET key:<n> <100 bytes>`, written through the node):
 *  - load time from pure incr replay (no rewrite yet), from the snapshot base
 *    (aof-use-rdb-preamble yes) and from the command-form base (no);
 *  - rewrite time and base size, for both formats;
 *  - p99 latency of 50 concurrent writers (SET, everysec: reply once written)
 *    during a rewrite against p99 without one;
 *  - the longest event-loop delay during the rewrite (perf_hooks.monitorEventLoopDelay, 1 ms resolution).
 * Then, unless --no-redis, Redis 7's own restart from its AOF for the same data,
 * with and without the RDB preamble, through /work/shared/peers/redis.sh load (RUNS=1).
 * Prints a table and writes bench/results/rewrite-<time>.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AofConfig } from '../src/aof/config.js';
import type { AofqNode } from '../src/node/node.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const KEYS = option('--keys', 1_000_000);
const WRITERS = 50;
/** The write load alone: about as long as a rewrite under load, so that rare stalls get the same chance. */
const BASELINE_MS = 10_000;
/** Latency samples kept per run (a preallocated array: the bench adds no garbage of its own). */
const MAX_SAMPLES = 4_000_000;
const NO_REDIS = args.includes('--no-redis');
const here = path.dirname(fileURLToPath(import.meta.url));

// What ships is measured: the compiled node (dist/), whose rewrite worker runs plain JS, as
// `aofq server` does. Under tsx the worker would compile TypeScript as it starts.
const dist = path.join(here, '..', 'dist');
if (!existsSync(path.join(dist, 'node', 'node.js'))) {
  throw new Error('bench/rewrite.ts measures the compiled server: run `npm run build` first');
}
const { DEFAULT_AOF_CONFIG } = (await import(
  pathToFileURL(path.join(dist, 'aof', 'config.js')).href
)) as typeof import('../src/aof/config.js');
const { AofqNode: Node } = (await import(
  pathToFileURL(path.join(dist, 'node', 'node.js')).href
)) as typeof import('../src/node/node.js');

function valueFor(i: number): Buffer {
  // 100 bytes that do not compress to nothing (as the peer script's values). From Node's
  // shared 8 KiB pool, as a socket's reads would be: Buffer.alloc gave every value an
  // ArrayBuffer of its own, whose tracking made the in-process load generator's own
  // garbage the bulk of the main thread's scavenge time (every byte is written below).
  const buf = Buffer.allocUnsafe(100);
  let x = (i * 2654435761) >>> 0;
  for (let j = 0; j < 100; j++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[j] = 97 + (x % 26);
  }
  return buf;
}

function keyFor(i: number): Buffer {
  return Buffer.from(`key:${String(i).padStart(7, '0')}`);
}

function percentile(values: Float64Array, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** The longest main-thread GC pause while `run` runs (ms). */
async function withGcWatch<T>(run: () => Promise<T>): Promise<{ result: T; longestGcMs: number }> {
  let longest = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longest = Math.max(longest, entry.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    const result = await run();
    return { result, longestGcMs: round(longest) };
  } finally {
    observer.disconnect();
  }
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

/** What monitorEventLoopDelay saw over one window, and its stalls over 10 and 20 ms per 10 s. */
interface DelayFigures {
  maxEventLoopDelayMs: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayP999Ms: number;
  stallsOver10msPer10s: number;
  stallsOver20msPer10s: number;
  windowSeconds: number;
}

/**
 * Watch the event loop while `run` runs: monitorEventLoopDelay (1 ms
 * resolution) for the maximum and percentiles, and a 1 ms interval timer that
 * counts stalls (the time between two of its turns, less its period).
 */
async function withDelayWatch<T>(run: () => Promise<T>): Promise<{ result: T; delay: DelayFigures }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let over10 = 0;
  let over20 = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const stall = now - last - 1;
    if (stall > 10) over10++;
    if (stall > 20) over20++;
    last = now;
  }, 1);
  const started = performance.now();
  histogram.enable();
  try {
    const result = await run();
    histogram.disable();
    const seconds = (performance.now() - started) / 1000;
    return {
      result,
      delay: {
        maxEventLoopDelayMs: round(histogram.max / 1e6),
        eventLoopDelayP99Ms: round(histogram.percentile(99) / 1e6),
        eventLoopDelayP999Ms: round(histogram.percentile(99.9) / 1e6),
        stallsOver10msPer10s: round((over10 * 10) / seconds, 2),
        stallsOver20msPer10s: round((over20 * 10) / seconds, 2),
        windowSeconds: round(seconds, 1),
      },
    };
  } finally {
    clearInterval(timer);
    histogram.disable();
  }
}

async function populate(node: AofqNode): Promise<number> {
  const started = performance.now();
  const SET = Buffer.from('SET');
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      for (let guard = 0; guard < KEYS && next < KEYS; guard++) {
        const i = next++;
        await node.command([SET, keyFor(i), valueFor(i)]);
      }
    }),
  );
  await node.aof.sync();
  return (performance.now() - started) / 1000;
}

/** 50 writers SET random existing keys until `stop()` says so; returns per-op latencies (ms). */
async function writeLoad(node: AofqNode, stop: () => boolean, maxMs: number): Promise<Float64Array> {
  const latencies = new Float64Array(MAX_SAMPLES);
  let samples = 0;
  const SET = Buffer.from('SET');
  const deadline = performance.now() + maxMs;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let n = 0; n < 10_000_000 && !stop() && performance.now() < deadline; n++) {
        const i = (n * 7919 + w * 104_729) % KEYS;
        const t = performance.now();
        await node.command([SET, keyFor(i), valueFor(i + 1)]);
        if (samples < MAX_SAMPLES) latencies[samples++] = performance.now() - t;
      }
    }),
  );
  return latencies.subarray(0, samples);
}

async function timedOpen(cfg: AofConfig): Promise<{ node: AofqNode; seconds: number }> {
  const started = performance.now();
  const node = await Node.open(cfg);
  return { node, seconds: (performance.now() - started) / 1000 };
}

async function baseFileSize(cfg: AofConfig): Promise<number> {
  const dir = path.join(cfg.dir, cfg.appenddirname);
  const manifest = await fsp.readFile(path.join(dir, `${cfg.appendfilename}.manifest`), 'utf8');
  const name = /^file (\S+) seq \d+ type b/m.exec(manifest)?.[1];
  if (name === undefined) throw new Error('no base in the manifest');
  return (await fsp.stat(path.join(dir, name))).size;
}

interface RewriteFigures extends DelayFigures {
  rewriteSeconds: number;
  baseBytes: number;
  p99DuringMs: number;
  opsDuring: number;
  longestMainGcPauseMs: number;
}

/** A rewrite with no writes beside it: its time, and the longest event-loop delay it alone causes. */
async function quietRewrite(node: AofqNode, cfg: AofConfig): Promise<Record<string, number>> {
  const started = performance.now();
  const { result: ok, delay } = await withDelayWatch(async () => {
    await node.rewrite();
    return node.waitRewrite();
  });
  if (!ok) throw new Error('the rewrite failed');
  const seconds = (performance.now() - started) / 1000;
  return { rewriteSeconds: round(seconds), baseBytes: await baseFileSize(cfg), ...delay };
}

async function rewriteUnderLoad(node: AofqNode, cfg: AofConfig): Promise<RewriteFigures> {
  let finished = false;
  const started = performance.now();
  const { result, delay } = await withDelayWatch(async () => {
    await node.rewrite();
    const done = node.waitRewrite().then((ok) => {
      finished = true;
      return ok;
    });
    const watched = await withGcWatch(() => writeLoad(node, () => finished, 300_000));
    return { watched, ok: await done };
  });
  const rewriteSeconds = (performance.now() - started) / 1000;
  if (!result.ok) throw new Error('the rewrite failed');
  const latencies = result.watched.result;
  return {
    rewriteSeconds: round(rewriteSeconds),
    baseBytes: await baseFileSize(cfg),
    p99DuringMs: round(percentile(latencies, 99)),
    opsDuring: latencies.length,
    longestMainGcPauseMs: result.watched.longestGcMs,
    ...delay,
  };
}

function redisPeer(): Record<string, unknown> | null {
  if (NO_REDIS) return null;
  const out = path.join(os.tmpdir(), `aofq-bench-redis-${process.pid}`);
  const result = spawnSync('/work/shared/peers/redis.sh', ['load'], {
    env: { ...process.env, RUNS: '1', LOAD_KEYS: String(KEYS), OUT: out, PORT: '6397', RDIR: `${out}-data` },
    encoding: 'utf8',
    timeout: 600_000,
  });
  process.stdout.write(result.stdout);
  const figures: Record<string, unknown> = {};
  for (const line of result.stdout.split('\n')) {
    const m = /^(pure_aof|rdb_preamble)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)/.exec(line);
    if (m) {
      figures[m[1] as string] = {
        aofBytes: Number(m[2]),
        wallMsToPong: Number(m[3]),
        logLoadSeconds: Number(m[4]),
        keys: Number(m[5]),
      };
    }
  }
  return figures;
}

async function main(): Promise<void> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-bench-rewrite-'));
  const cfg: AofConfig = {
    ...DEFAULT_AOF_CONFIG,
    dir: root,
    appendfsync: 'everysec',
    autoAofRewritePercentage: 0,
  };
  const results: Record<string, unknown> = {
    keys: KEYS,
    valueBytes: 100,
    writers: WRITERS,
    node: process.version,
  };
  try {
    let node = await Node.open(cfg);
    results.populateSeconds = round(await populate(node));
    await node.close();

    let opened = await timedOpen(cfg);
    results.loadIncrReplaySeconds = round(opened.seconds);
    node = opened.node;

    const loaded = node;
    const { result: watched, delay } = await withDelayWatch(() =>
      withGcWatch(() => writeLoad(loaded, () => false, BASELINE_MS)),
    );
    const baseline = watched.result;
    results.longestMainGcPauseWithoutRewriteMs = watched.longestGcMs;
    results.p99WithoutRewriteMs = round(percentile(baseline, 99));
    results.opsWithoutRewrite = baseline.length;
    results.maxEventLoopDelayWithoutRewriteMs = delay.maxEventLoopDelayMs;
    results.writeLoadWithoutRewrite = delay;

    results.preambleRewriteUnderLoad = await rewriteUnderLoad(node, cfg);
    // Loads are timed from a base with an (almost) empty incr file: a quiet rewrite first.
    results.preambleRewriteQuiet = await quietRewrite(node, cfg);
    await node.close();
    opened = await timedOpen(cfg);
    results.loadSnapshotBaseSeconds = round(opened.seconds);
    node = opened.node;
    await node.close();

    const commandsCfg: AofConfig = { ...cfg, aofUseRdbPreamble: false };
    node = await Node.open(commandsCfg);
    results.commandsRewriteUnderLoad = await rewriteUnderLoad(node, commandsCfg);
    results.commandsRewriteQuiet = await quietRewrite(node, commandsCfg);
    await node.close();
    opened = await timedOpen(commandsCfg);
    results.loadCommandBaseSeconds = round(opened.seconds);
    await opened.node.close();
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
  results.redis = redisPeer();
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(here, 'results', `rewrite-${stamp}.json`);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
}

await main();
