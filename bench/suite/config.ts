/**
 * The suite's knobs, from the environment. Full run by default; BENCH_QUICK=1
 * is a smoke run (small counts, one repetition) whose figures are not for
 * comparison.
 *
 *   BENCH_QUICK=1            small counts, 1 repetition, no BENCHMARKS.md rewrite
 *   BENCH_ONLY=a,b           workloads: engine, enqueue, e2e, recovery, memory, rewrite
 *   BENCH_RUNS=n             repetitions per configuration (default 3; quick 1)
 *   BENCH_JOBS=n             jobs per enqueue / end-to-end run (default 50,000; quick 3,000)
 *   BENCH_CAP_S=s            time cap per enqueue / end-to-end run (default 20; quick 8)
 *   BENCH_RECOVERY_JOBS=n    waiting jobs for recovery, memory and rewrite (default 1,000,000; quick 30,000)
 *   BENCH_ENGINE_SCALE=x     multiplies redis-benchmark's -n (default 1; quick 0.05)
 *   BENCH_WARMUP=n           untimed jobs before each enqueue / end-to-end run (default 2,000; quick 300)
 *   BENCH_DOCS=0|1           regenerate BENCHMARKS.md's suite section (default: 1, quick: 0)
 *   BENCH_INSTALL=0          never run apt-get; a missing peer is reported missing
 *   BENCH_MAX_S=s            watchdog for the whole suite (default 2400; quick 900)
 *   BENCH_TMP=dir            where data dirs are made (default os.tmpdir())
 *   BENCH_OUT=dir            where results go (default bench/results)
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WORKLOADS = ['engine', 'enqueue', 'e2e', 'recovery', 'memory', 'rewrite'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const env = process.env;
const num = (name: string, fallback: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
  return n;
};

const QUICK = env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true';

function only(): ReadonlySet<Workload> {
  const raw = env.BENCH_ONLY;
  if (raw === undefined || raw.trim() === '') return new Set(WORKLOADS);
  const picked = new Set<Workload>();
  for (const part of raw.split(',').map((s) => s.trim())) {
    if (part === '') continue;
    if (!(WORKLOADS as readonly string[]).includes(part)) {
      throw new Error(`BENCH_ONLY: unknown workload ${part} (known: ${WORKLOADS.join(', ')})`);
    }
    picked.add(part as Workload);
  }
  return picked;
}

export const CONFIG = {
  quick: QUICK,
  only: only(),
  runs: Math.max(1, Math.floor(num('BENCH_RUNS', QUICK ? 1 : 3))),
  jobs: Math.max(100, Math.floor(num('BENCH_JOBS', QUICK ? 3000 : 50_000))),
  capS: num('BENCH_CAP_S', QUICK ? 8 : 20),
  recoveryJobs: Math.max(1000, Math.floor(num('BENCH_RECOVERY_JOBS', QUICK ? 30_000 : 1_000_000))),
  engineScale: num('BENCH_ENGINE_SCALE', QUICK ? 0.05 : 1),
  warmup: Math.floor(num('BENCH_WARMUP', QUICK ? 300 : 2000)),
  docs: env.BENCH_DOCS !== undefined ? env.BENCH_DOCS === '1' : !QUICK,
  install: env.BENCH_INSTALL !== '0',
  maxS: num('BENCH_MAX_S', QUICK ? 900 : 2400),
  tmp: env.BENCH_TMP ?? tmpdir(),
  out: env.BENCH_OUT ?? join(ROOT, 'bench', 'results'),
  /** 50 concurrent clients unless a workload says otherwise. */
  clients: 50,
  /** Every payload is 100 bytes (its JSON text for the queues, the value for SET). */
  payloadBytes: 100,
  /** Jobs per message in the bulk variants (HTTP bulk, WebSocket enqueueBatch, BullMQ addBulk). */
  bulkSize: 100,
} as const;

export type SuiteConfig = typeof CONFIG;

export const want = (w: Workload): boolean => CONFIG.only.has(w);
