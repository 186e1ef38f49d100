/**
 * Workloads 4, 5 and 6 on one dataset of N waiting jobs (1,000,000 in a full
 * run), 100-byte payloads, all distinct:
 *
 * - recovery: restart time, spawn until serving (aofq: /readyz 200; Redis:
 *   the first PONG, LOADING does not count), for aofq from its pure
 *   incremental AOF and from a snapshot base after BGREWRITEAOF; for Redis
 *   holding BullMQ's N jobs after BGREWRITEAOF (RDB preamble, Redis's
 *   default); and for Redis with N plain keys (SET key:N <100 B>);
 * - memory: aofq's RSS after a restart with N jobs minus its RSS when empty,
 *   per job, against Redis's used_memory for BullMQ's N jobs minus empty;
 * - rewrite: p99 latency of HTTP enqueues (50 connections) while a
 *   BGREWRITEAOF of the dataset runs, against p99 just before it.
 *
 * Every restart checks that the jobs are all there.
 */
import { readFileSync } from 'node:fs';
import { CONFIG, want } from './config.js';
import { payloadText } from './payload.js';
import { discard, type PeerAvailability, type Server, startAofq, startRedis } from './peers.js';
import { pollUntil, rssBytes, sleep } from './procs.js';
import { encode, info, RespConn, respOnce } from './resp-client.js';
import type { Collector } from './results.js';
import { runGenerator } from './run-gen.js';

const QUEUE = 'recovery';
const POPULATE_BULK = 1000;
const POPULATE_INFLIGHT = 4;
/** Let the allocator settle after a load before reading RSS. */
const SETTLE_MS = 1000;

/** Load `n` distinct jobs into the server (the dataset both peers restart with). */
function populate(target: 'aofq-ws' | 'bullmq', port: number, serverPid: number, n: number) {
  return runGenerator(
    {
      target,
      mode: 'populate',
      port,
      serverPid,
      queue: QUEUE,
      jobs: n,
      capS: 1200,
      warmup: 0,
      clients: 1,
      bulk: POPULATE_BULK,
      inflight: POPULATE_INFLIGHT,
      payloadBytes: CONFIG.payloadBytes,
    },
    1_300_000,
  );
}

async function aofqWaiting(s: Server): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${s.port}/v1/queues/${QUEUE}`);
  const body = (await res.json()) as { counts?: { waiting?: number } };
  return body.counts?.waiting ?? -1;
}

async function aofqPersistence(s: Server): Promise<Record<string, number | string>> {
  const res = await fetch(`http://127.0.0.1:${s.port}/v1/admin/info?section=persistence`);
  return ((await res.json()) as { persistence: Record<string, number | string> }).persistence;
}

async function aofqRewrite(s: Server): Promise<number> {
  // As for Redis: let an automatic rewrite finish first.
  await pollUntil(
    'aofq automatic rewrite',
    async () => {
      const p = await aofqPersistence(s);
      return Number(p.aof_rewrite_in_progress) === 0 && Number(p.aof_rewrite_scheduled) === 0;
    },
    { timeoutMs: 900_000, intervalMs: 100 },
  );
  const before = Number((await aofqPersistence(s)).aof_rewrites);
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${s.port}/v1/admin/rewrite`, { method: 'POST' });
  if (res.status !== 202) throw new Error(`POST /v1/admin/rewrite: ${res.status} ${await res.text()}`);
  await pollUntil(
    'aofq rewrite',
    async () => {
      const p = await aofqPersistence(s);
      return (
        Number(p.aof_rewrites) > before &&
        Number(p.aof_rewrite_in_progress) === 0 &&
        Number(p.aof_rewrite_scheduled) === 0
      );
    },
    { timeoutMs: 900_000, intervalMs: 100 },
  );
  const p = await aofqPersistence(s);
  if (p.aof_last_bgrewrite_status !== 'ok')
    throw new Error(`aofq rewrite status ${String(p.aof_last_bgrewrite_status)}`);
  return (performance.now() - t0) / 1000;
}

async function redisRewrite(port: number): Promise<number> {
  // An automatic rewrite (the AOF passed 64 MB while loading) may still run: wait for it, so that
  // BGREWRITEAOF is not refused with "already in progress" and the base holds the whole dataset.
  const idle = async (): Promise<boolean> => {
    const p = await info(port, 'persistence');
    return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
  };
  await pollUntil('redis automatic rewrite', idle, { timeoutMs: 900_000, intervalMs: 100 });
  const t0 = performance.now();
  const r = await respOnce(port, 'BGREWRITEAOF');
  if (r instanceof Error) throw r;
  await pollUntil(
    'redis rewrite',
    async () => {
      const p = await info(port, 'persistence');
      return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
    },
    { timeoutMs: 900_000, intervalMs: 100 },
  );
  const p = await info(port, 'persistence');
  if (p.aof_last_bgrewrite_status !== 'ok')
    throw new Error(`redis rewrite status ${p.aof_last_bgrewrite_status}`);
  return (performance.now() - t0) / 1000;
}

/** Server-side figures from the logs: aofq's 'ready' line (ms after spawn), Redis's "DB loaded" seconds. */
function aofqLogReadyMs(s: Server): number {
  try {
    const lines = readFileSync(s.logFile, 'utf8').trim().split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i] as string;
      if (!line.includes('"event":"ready"')) continue;
      const rec = JSON.parse(line) as { time: number; pid: number };
      if (rec.pid === s.pid) return rec.time - s.spawnedAtEpochMs;
    }
  } catch {
    // no log
  }
  return Number.NaN;
}

function redisLogLoadS(s: Server): number {
  try {
    const matches = [
      ...readFileSync(s.logFile, 'utf8').matchAll(/DB loaded from append only file: ([\d.]+) seconds/g),
    ];
    const last = matches[matches.length - 1];
    return last ? Number(last[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const mb = (b: number): number => b / 2 ** 20;

// --- aofq ----------------------------------------------------------------------------------

async function aofqDataset(rows: Collector, n: number): Promise<void> {
  const extra = ['--auto-aof-rewrite-percentage', '0'];
  // `cur` is always the latest server started on the dataset's dir: the finally stops it and removes the dir.
  let cur = await startAofq({ appendfsync: 'everysec', extra });
  const dir = cur.dir;
  const start = async (): Promise<Server> => {
    cur = await startAofq({ appendfsync: 'everysec', extra, dir });
    return cur;
  };
  try {
    await sleep(SETTLE_MS);
    const rssEmpty = rssBytes(cur.pid);
    const emptyReadyMs = cur.readyMs;
    const pop = await populate('aofq-ws', cur.port, cur.pid, n);
    process.stderr.write(
      `  aofq populate: ${pop.jobs} jobs in ${pop.secs.toFixed(1)} s (${pop.jobsPerS.toFixed(0)}/s, WebSocket enqueueBatch x${POPULATE_BULK})\n`,
    );
    if (pop.jobs !== n) throw new Error(`aofq populate stored ${pop.jobs} of ${n} jobs`);
    const rssPopulated = rssBytes(cur.pid);
    await cur.stop();

    /** Restart on the dataset, check every job is there, record the time. */
    const restart = async (id: string, run: number): Promise<Server> => {
      const r = await start();
      const waiting = await aofqWaiting(r);
      if (waiting !== n) throw new Error(`aofq restarted with ${waiting} waiting jobs, expected ${n}`);
      const logMs = aofqLogReadyMs(r);
      if (want('recovery'))
        rows.add(id, r.readyMs / 1000, { logReadyS: logMs / 1000, emptyStartS: emptyReadyMs / 1000 });
      process.stderr.write(
        `  run ${run} ${id}: ready in ${(r.readyMs / 1000).toFixed(3)} s (log: ${(logMs / 1000).toFixed(3)} s)\n`,
      );
      return r;
    };
    if (want('recovery')) {
      for (let run = 1; run <= CONFIG.runs; run++) await (await restart('recovery.aofq.incr', run)).stop();
    }
    const rewriteS = await aofqRewrite(await start());
    process.stderr.write(`  aofq BGREWRITEAOF of ${n} jobs: ${rewriteS.toFixed(1)} s\n`);
    await cur.stop();
    const runs = want('recovery') || want('memory') ? CONFIG.runs : 0;
    for (let run = 1; run <= runs; run++) {
      const r = await restart('recovery.aofq.snapshot', run);
      await sleep(SETTLE_MS);
      const rss = rssBytes(r.pid);
      if (want('memory')) {
        rows.add('memory.aofq', (rss - rssEmpty) / n, {
          rssMiB: mb(rss),
          rssEmptyMiB: mb(rssEmpty),
          rssAfterPopulateMiB: mb(rssPopulated),
        });
      }
      if (run < runs) await r.stop();
    }
    if (want('rewrite')) {
      const s = cur.proc.hasExited() ? await start() : cur;
      const r = await runGenerator(
        {
          target: 'aofq-http',
          mode: 'rewrite-impact',
          port: s.port,
          serverPid: s.pid,
          queue: 'latency',
          jobs: 0,
          capS: CONFIG.capS,
          warmup: CONFIG.warmup,
          clients: CONFIG.clients,
          bulk: 1,
          inflight: 1,
          payloadBytes: CONFIG.payloadBytes,
          baselineS: CONFIG.quick ? 2 : 5,
          warmupS: CONFIG.quick ? 1 : 3,
        },
        1_000_000,
      );
      const e = r.extra ?? {};
      rows.add('rewrite.aofq.during', r.p99Ms ?? Number.NaN, {
        p50Ms: r.p50Ms,
        maxMs: r.maxMs,
        jobsPerS: r.jobsPerS,
        rewriteS: Number(e.rewriteSecs),
        genCpuPct: r.genCpuPct,
        serverCpuPct: r.serverCpuPct,
      });
      rows.add('rewrite.aofq.baseline', Number(e.withoutP99Ms), {
        p50Ms: Number(e.withoutP50Ms),
        maxMs: Number(e.withoutMaxMs),
        jobsPerS: Number(e.withoutJobsPerS),
        beforeP99Ms: Number(e.beforeP99Ms),
        afterP99Ms: Number(e.afterP99Ms),
      });
      process.stderr.write(
        `  rewrite impact: enqueue p99 ${Number(e.withoutP99Ms).toFixed(2)} ms without (before ${Number(e.beforeP99Ms).toFixed(2)}, after ${Number(e.afterP99Ms).toFixed(2)}), ${(r.p99Ms ?? Number.NaN).toFixed(2)} ms during a ${Number(e.rewriteSecs).toFixed(1)} s rewrite (${e.rewriteStatus})\n`,
      );
      if (r.capped) rows.fail('rewrite.aofq.during', 'the rewrite did not finish within the cap');
    }
  } finally {
    await discard(cur);
  }
}

// --- BullMQ on Redis -----------------------------------------------------------------------

async function bullmqDataset(rows: Collector, n: number): Promise<void> {
  let s = await startRedis({ appendfsync: 'everysec' });
  const dir = s.dir;
  try {
    const emptyInfo = await info(s.port, 'memory');
    const empty = Number(emptyInfo.used_memory);
    const emptyRss = Number(emptyInfo.used_memory_rss);
    const pop = await populate('bullmq', s.port, s.pid, n);
    process.stderr.write(
      `  BullMQ populate: ${pop.jobs} jobs in ${pop.secs.toFixed(1)} s (${pop.jobsPerS.toFixed(0)}/s, addBulk x${POPULATE_BULK})\n`,
    );
    const waitKey = `bull:${QUEUE}:wait`;
    const llen = await respOnce(s.port, 'LLEN', waitKey);
    if (llen !== n) throw new Error(`BullMQ holds ${String(llen)} waiting jobs, expected ${n}`);
    const rewriteS = await redisRewrite(s.port);
    process.stderr.write(`  Redis BGREWRITEAOF of BullMQ's ${n} jobs: ${rewriteS.toFixed(1)} s\n`);
    await s.stop();
    const runs = want('recovery') || want('memory') ? CONFIG.runs : 0;
    for (let run = 1; run <= runs; run++) {
      s = await startRedis({ appendfsync: 'everysec', dir });
      const len = await respOnce(s.port, 'LLEN', waitKey);
      if (len !== n) throw new Error(`Redis restarted with ${String(len)} BullMQ jobs, expected ${n}`);
      const m = await info(s.port, 'memory');
      if (want('recovery'))
        rows.add('recovery.bullmq.preamble', s.readyMs / 1000, { logLoadS: redisLogLoadS(s) });
      if (want('memory')) {
        rows.add('memory.bullmq', (Number(m.used_memory) - empty) / n, {
          usedMemoryMiB: mb(Number(m.used_memory)),
          usedMemoryRssMiB: mb(Number(m.used_memory_rss)),
          rssPerJobB: (Number(m.used_memory_rss) - emptyRss) / n,
        });
      }
      process.stderr.write(
        `  run ${run} recovery.bullmq.preamble: PONG after ${(s.readyMs / 1000).toFixed(3)} s\n`,
      );
      await s.stop();
    }
  } finally {
    await discard(s);
  }
}

// --- Redis with plain keys -----------------------------------------------------------------

async function redisKeysDataset(rows: Collector, n: number): Promise<void> {
  let s = await startRedis({ appendfsync: 'everysec' });
  const dir = s.dir;
  try {
    const conn = await RespConn.connect(s.port);
    const CHUNK = 1000;
    const WINDOW = 8;
    let next = 0;
    const loop = async (): Promise<void> => {
      for (let guard = 0; guard < n && next < n; guard++) {
        const from = next;
        const count = Math.min(CHUNK, n - from);
        next += count;
        const parts: Buffer[] = [];
        for (let i = from; i < from + count; i++) {
          parts.push(
            encode(['SET', `key:${String(i).padStart(7, '0')}`, payloadText(i, CONFIG.payloadBytes)]),
          );
        }
        const replies = await conn.send(Buffer.concat(parts), count);
        if (replies.some((r) => r !== 'OK')) throw new Error('SET failed while loading plain keys');
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, loop));
    conn.close();
    const dbsize = await respOnce(s.port, 'DBSIZE');
    if (dbsize !== n) throw new Error(`Redis holds ${String(dbsize)} keys, expected ${n}`);
    await redisRewrite(s.port);
    await s.stop();
    for (let run = 1; run <= CONFIG.runs; run++) {
      s = await startRedis({ appendfsync: 'everysec', dir });
      const size = await respOnce(s.port, 'DBSIZE');
      if (size !== n) throw new Error(`Redis restarted with ${String(size)} keys, expected ${n}`);
      rows.add('recovery.redis.keys', s.readyMs / 1000, { logLoadS: redisLogLoadS(s) });
      process.stderr.write(
        `  run ${run} recovery.redis.keys: PONG after ${(s.readyMs / 1000).toFixed(3)} s\n`,
      );
      await s.stop();
    }
  } finally {
    await discard(s);
  }
}

export async function runDatasets(avail: PeerAvailability, rows: Collector): Promise<void> {
  const n = CONFIG.recoveryJobs;
  const k = n.toLocaleString('en-US');
  if (want('recovery')) {
    rows.declare({
      id: 'recovery.aofq.snapshot',
      workload: 'recovery',
      system: 'aofq',
      label: `aofq restart, ${k} waiting jobs, snapshot base after BGREWRITEAOF`,
      unit: 's',
    });
    rows.declare({
      id: 'recovery.aofq.incr',
      workload: 'recovery',
      system: 'aofq',
      label: `aofq restart, ${k} waiting jobs, pure incremental AOF (no rewrite)`,
      unit: 's',
    });
    rows.declare({
      id: 'recovery.bullmq.preamble',
      workload: 'recovery',
      system: 'bullmq',
      label: `Redis restart holding BullMQ's ${k} waiting jobs, RDB preamble after BGREWRITEAOF`,
      unit: 's',
    });
    rows.declare({
      id: 'recovery.redis.keys',
      workload: 'recovery',
      system: 'redis',
      label: `Redis restart with ${k} plain keys (SET, 100 B), RDB preamble after BGREWRITEAOF`,
      unit: 's',
    });
  }
  if (want('memory')) {
    rows.declare({
      id: 'memory.aofq',
      workload: 'memory',
      system: 'aofq',
      label: `aofq RSS per waiting job (after a restart with ${k}, minus empty)`,
      unit: 'B/job',
    });
    rows.declare({
      id: 'memory.bullmq',
      workload: 'memory',
      system: 'bullmq',
      label: `Redis used_memory per BullMQ waiting job (${k}, minus empty)`,
      unit: 'B/job',
    });
  }
  if (want('rewrite')) {
    rows.declare({
      id: 'rewrite.aofq.baseline',
      workload: 'rewrite',
      system: 'aofq',
      label: `aofq HTTP enqueue p99, ${CONFIG.clients} connections, ${k} jobs held, no rewrite (the windows before and after it)`,
      unit: 'ms',
    });
    rows.declare({
      id: 'rewrite.aofq.during',
      workload: 'rewrite',
      system: 'aofq',
      label: `aofq HTTP enqueue p99, ${CONFIG.clients} connections, while BGREWRITEAOF of ${k} jobs runs`,
      unit: 'ms',
    });
  }
  const guarded = async (ids: string[], what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      for (const id of ids) rows.fail(id, `${what}: ${(err as Error).message.split('\n')[0]}`);
      process.stderr.write(`  ${what}: FAILED ${(err as Error).stack ?? String(err)}\n`);
    }
  };
  await guarded(
    [
      'recovery.aofq.snapshot',
      'recovery.aofq.incr',
      'memory.aofq',
      'rewrite.aofq.baseline',
      'rewrite.aofq.during',
    ],
    'aofq dataset',
    () => aofqDataset(rows, n),
  );
  if (want('recovery') || want('memory')) {
    if (avail.bullmq) {
      await guarded(['recovery.bullmq.preamble', 'memory.bullmq'], 'BullMQ dataset', () =>
        bullmqDataset(rows, n),
      );
    } else {
      rows.missing('recovery.bullmq.preamble', 'BullMQ or redis-server missing');
      rows.missing('memory.bullmq', 'BullMQ or redis-server missing');
    }
  }
  if (want('recovery')) {
    if (avail.redis)
      await guarded(['recovery.redis.keys'], 'Redis keys dataset', () => redisKeysDataset(rows, n));
    else rows.missing('recovery.redis.keys', 'redis-server is not installed');
  }
}
