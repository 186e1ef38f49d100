/**
 * Workloads 2 and 3: enqueue only, and end to end (producers and consumers
 * together), for aofq over HTTP and WebSocket, BullMQ 6 on Redis and
 * beanstalkd. Fast mode: aofq appendfsync everysec, Redis everysec,
 * beanstalkd's default binlog. Durable mode (end to end): aofq `fsync`
 * queues, Redis always, beanstalkd -f 0. A fresh server for every run, one
 * load-generator process per run (bench/suite/loadgen.ts).
 */
import { CONFIG } from './config.js';
import type { GenResult, GenSpec, Mode, Target } from './loadgen.js';
import {
  discard,
  type PeerAvailability,
  type Server,
  startAofq,
  startBeanstalkd,
  startRedis,
} from './peers.js';
import { info } from './resp-client.js';
import type { Collector, System } from './results.js';
import { runGenerator } from './run-gen.js';

export type QueueMode = 'fast' | 'durable';

interface QueueConfig {
  id: string;
  workload: 'enqueue' | 'e2e';
  system: System;
  target: Target;
  mode: Mode;
  durable: boolean;
  label: string;
}

const C = CONFIG.clients;
const B = CONFIG.bulkSize;

function configs(): QueueConfig[] {
  const out: QueueConfig[] = [];
  const enq = (target: Target, system: System, mode: Mode, label: string): void => {
    const kind = mode === 'enqueue' ? 'single' : 'bulk';
    out.push({
      id: `enqueue.${target}.${kind}`,
      workload: 'enqueue',
      system,
      target,
      mode,
      durable: false,
      label,
    });
  };
  enq('aofq-http', 'aofq', 'enqueue', `aofq HTTP POST /jobs, ${C} connections`);
  enq('aofq-http', 'aofq', 'enqueue-bulk', `aofq HTTP POST /jobs/bulk x${B}, 1 request in flight`);
  enq('aofq-ws', 'aofq', 'enqueue', `aofq WebSocket enqueue, ${C} in flight on 1 connection`);
  enq('aofq-ws', 'aofq', 'enqueue-bulk', `aofq WebSocket enqueueBatch x${B}, 1 in flight`);
  enq('bullmq', 'bullmq', 'enqueue', `BullMQ Queue.add, ${C} in flight`);
  enq('bullmq', 'bullmq', 'enqueue-bulk', `BullMQ Queue.addBulk x${B}, 1 in flight`);
  enq('beanstalkd', 'beanstalkd', 'enqueue', `beanstalkd put, ${C} connections`);
  for (const durable of [false, true]) {
    const m = durable ? 'durable' : 'fast';
    const e2e = (target: Target, system: System, label: string): void => {
      out.push({ id: `e2e.${m}.${target}`, workload: 'e2e', system, target, mode: 'e2e', durable, label });
    };
    e2e(
      'aofq-http',
      'aofq',
      `aofq HTTP: ${C} producers POST /jobs, ${C} consumers lease 1 + ack${durable ? ', fsync queue' : ''}`,
    );
    e2e(
      'aofq-ws',
      'aofq',
      `aofq WebSocket: enqueue ${C} in flight, 1 consumer prefetch ${C}, ack on push${durable ? ', fsync queue' : ''}`,
    );
    e2e(
      'bullmq',
      'bullmq',
      `BullMQ: Queue.add ${C} in flight + Worker concurrency ${C}, Redis ${durable ? 'always' : 'everysec'}`,
    );
    e2e(
      'beanstalkd',
      'beanstalkd',
      `beanstalkd: ${C} producers put, ${C} consumers reserve + delete, binlog ${durable ? '-f 0' : 'default'}`,
    );
  }
  return out;
}

async function serverFor(c: QueueConfig): Promise<Server> {
  switch (c.system) {
    case 'aofq':
      // Durable mode is a per-queue setting (durability: fsync); the server stays at everysec.
      return startAofq({ appendfsync: 'everysec' });
    case 'bullmq':
      return startRedis({ appendfsync: c.durable ? 'always' : 'everysec' });
    case 'beanstalkd':
      return startBeanstalkd({ binlog: c.durable ? 'f0' : 'default' });
    default:
      throw new Error(`no queue server for ${c.system}`);
  }
}

/** Automatic AOF rewrites the server ran during the run (Redis and aofq both default to 100% / 64 MB). */
async function rewritesDuring(s: Server): Promise<number | undefined> {
  try {
    if (s.kind === 'redis') return Number((await info(s.port, 'persistence')).aof_rewrites);
    if (s.kind === 'aofq') {
      const res = await fetch(`http://127.0.0.1:${s.port}/v1/admin/info?section=persistence`);
      return Number(
        ((await res.json()) as { persistence: { aof_rewrites: number } }).persistence.aof_rewrites,
      );
    }
  } catch {
    // not essential
  }
  return undefined;
}

function available(c: QueueConfig, avail: PeerAvailability): string | null {
  if (c.system === 'bullmq' && !avail.bullmq) return 'BullMQ or redis-server missing';
  if (c.system === 'beanstalkd' && !avail.beanstalkd) return 'beanstalkd is not installed';
  return null;
}

export async function runQueues(
  which: ReadonlySet<'enqueue' | 'e2e'>,
  avail: PeerAvailability,
  rows: Collector,
): Promise<void> {
  const list = configs().filter((c) => which.has(c.workload));
  for (const c of list) {
    rows.declare({ id: c.id, workload: c.workload, system: c.system, label: c.label, unit: 'jobs/s' });
    const why = available(c, avail);
    if (why) rows.missing(c.id, why);
  }
  for (let run = 1; run <= CONFIG.runs; run++) {
    for (const c of list) {
      if (available(c, avail)) continue;
      let server: Server | null = null;
      try {
        server = await serverFor(c);
        const spec: GenSpec = {
          target: c.target,
          mode: c.mode,
          port: server.port,
          serverPid: server.pid,
          queue: 'bench',
          jobs: CONFIG.jobs,
          capS: CONFIG.capS,
          warmup: CONFIG.warmup,
          clients: C,
          bulk: B,
          inflight: 1,
          payloadBytes: CONFIG.payloadBytes,
          durability: c.durable ? 'fsync' : 'default',
        };
        const r: GenResult = await runGenerator(spec, (CONFIG.capS * 3 + 120) * 1000);
        const aofRewrites = await rewritesDuring(server);
        rows.add(c.id, r.jobsPerS, {
          aofRewrites,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          genCpuPct: r.genCpuPct,
          serverCpuPct: r.serverCpuPct,
          jobs: r.jobs,
          secs: r.secs,
          errors: r.errors,
          capped: r.capped ? 1 : 0,
        });
        process.stderr.write(
          `  run ${run} ${c.id}: ${r.jobsPerS.toFixed(0)} jobs/s (${r.jobs} in ${r.secs.toFixed(2)} s${r.capped ? ', capped' : ''}${r.errors ? `, ${r.errors} errors` : ''}) cpu gen ${r.genCpuPct.toFixed(0)}% server ${r.serverCpuPct.toFixed(0)}%\n`,
        );
      } catch (err) {
        rows.fail(c.id, `run ${run}: ${(err as Error).message.split('\n')[0]}`);
        process.stderr.write(`  run ${run} ${c.id}: FAILED ${(err as Error).message}\n`);
      } finally {
        if (server) await discard(server);
      }
    }
  }
}
