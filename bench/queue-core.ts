/**
 * Queue core benchmark: heap and RSS per waiting job after 1,000,000 adds of
 * 100-byte payloads; add -> lease -> ack cycles per second pure in-memory
 * (records built and applied, not written); and the same cycles in-process
 * through the node layer with the real AOF on disk, under appendfsync
 * everysec (default durability) and for a queue with durability fsync,
 * with 50 concurrent producer/consumer loops, and the same beside 10,000 idle
 * queues that each hold a delayed job (the leader's deadline bookkeeping must
 * not scan them). Every round also measures two references with the same
 * loops: the harness alone (operations that do nothing) and the queue core
 * with the same per-turn replies but no node and no AOF; the node's rate over
 * theirs, per round, is reported beside the rates. The rounds are repeated
 * (BENCH_ROUNDS, default 3) and reported as median and range: this 2-vCPU
 * machine varies by ±25 % between runs, and the per-round ratios cancel most
 * of that. Results go to bench/results/queue-core-<time>.json.
 * Run: node --expose-gc --import tsx bench/queue-core.ts [jobs] [cycles]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_AOF_CONFIG } from '../src/aof/config.js';
import { AofqNode } from '../src/node/node.js';
import { type QueueRequest, Queues } from '../src/queue/index.js';
import { perTurn } from './per-turn.mjs';

const JOBS = Number(process.argv[2] ?? 1_000_000);
const CYCLES = Number(process.argv[3] ?? 300_000);
const PAYLOAD_BYTES = 100;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) collect();
}

function memory(): { heap: number; rss: number } {
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}

function measureMemory(): void {
  const queues = new Queues();
  // One job's data: a JSON string of exactly PAYLOAD_BYTES bytes, different for every job.
  const filler = 'x'.repeat(PAYLOAD_BYTES - 12);
  let nowMs = 1_700_000_000_000;
  const before = memory();
  const batch = 1000;
  for (let i = 0; i < JOBS; i += batch) {
    const jobs = [];
    for (let j = 0; j < batch && i + j < JOBS; j++) {
      jobs.push({ name: 'email', data: `${filler}${String(i + j).padStart(10, '0')}` });
    }
    queues.execute({ op: 'add', queue: 'bench', jobs }, { nowMs: nowMs++ });
  }
  const after = memory();
  // A stored payload is the JSON text: the 98-character string plus its two quotes = 100 bytes (one byte per char).
  const payload = JOBS * PAYLOAD_BYTES;
  const heapPerJob = (after.heap - before.heap - payload) / JOBS;
  const rssPerJob = (after.rss - before.rss - payload) / JOBS;
  const counts = queues.execute({ op: 'getJobCounts', queue: 'bench' }, { nowMs }).result;
  results.memory = { jobs: JOBS, heapBytesPerJob: heapPerJob, rssBytesPerJob: rssPerJob };
  console.log(
    `memory: ${JOBS} waiting jobs (${counts.waiting} counted), payload ${PAYLOAD_BYTES} B each: ` +
      `heap ${(heapPerJob).toFixed(1)} B/job beyond payload, rss ${rssPerJob.toFixed(1)} B/job beyond payload ` +
      `(heap +${((after.heap - before.heap) / 2 ** 20).toFixed(1)} MiB, rss +${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MiB)`,
  );
}

const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version };

function measureThroughput(): void {
  const queues = new Queues();
  const data = { to: 'someone@example.com', subject: 'hello', body: 'x'.repeat(40) };
  let nowMs = 1_700_000_000_000;
  const run = (cycles: number) => {
    for (let i = 0; i < cycles; i++) {
      const ctx = { nowMs: nowMs++ };
      queues.execute({ op: 'add', queue: 'cycle', jobs: [{ name: 'email', data }] }, ctx);
      const { result } = queues.execute({ op: 'lease', queue: 'cycle', count: 1, leaseMs: 30_000 }, ctx);
      const leased = result.jobs[0];
      if (leased === undefined) throw new Error('nothing leased');
      queues.execute({ op: 'ack', queue: 'cycle', id: leased.job.id, token: leased.token }, ctx);
    }
  };
  run(Math.min(20_000, CYCLES)); // warm up
  const start = process.hrtime.bigint();
  run(CYCLES);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(
    `throughput: ${CYCLES} add->lease->ack cycles in ${seconds.toFixed(2)} s = ${Math.round(CYCLES / seconds)} cycles/s`,
  );
  results.inMemoryCyclesPerSec = Math.round(CYCLES / seconds);
}

type Op = (request: QueueRequest) => Promise<unknown>;

/**
 * `loops` concurrent add -> lease -> ack loops through `op` for `seconds`; returns cycles/s.
 * Every case below runs this same loop, so their ratios within one round cancel the machine's
 * speed of the moment (it varies by ±25 % here between runs).
 */
async function runLoops(op: Op, loops: number, seconds: number): Promise<number> {
  const data = { payload: 'x'.repeat(PAYLOAD_BYTES - 14) };
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      await op({ op: 'add', queue: 'cycle', jobs: [{ name: 'email', data }] });
      const { jobs } = (await op({ op: 'lease', queue: 'cycle', count: 1, leaseMs: 30_000 })) as {
        jobs: Array<{ job: { id: string }; token: number }>;
      };
      for (const lease of jobs) {
        await op({ op: 'ack', queue: 'cycle', id: lease.job.id, token: lease.token });
        done++;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: loops }, loop));
  return done / ((performance.now() - start) / 1000);
}

/**
 * Two references, run in every round beside the node: the loop alone with operations that do
 * nothing (the harness's own cost: its awaits and turns), and the queue core with the same
 * turns but no node and no AOF.
 */
async function measureReference(kind: 'harness' | 'core', loops: number, seconds: number): Promise<number> {
  let op: Op;
  if (kind === 'harness') {
    const reply = { jobs: [{ job: { id: '1' }, token: 1 }] };
    op = perTurn(() => reply);
  } else {
    const queues = new Queues();
    queues.execute(
      { op: 'setConfig', queue: 'cycle', config: { retention: { completed: true, failed: 1000 } } },
      { nowMs: Date.now() },
    );
    op = perTurn((request) => queues.execute(request, { nowMs: Date.now() }).result);
  }
  await runLoops(op, loops, 0.5); // warm up
  const rate = await runLoops(op, loops, seconds);
  console.log(`reference ${kind} (${loops} loops, same turns, no AOF): ${Math.round(rate)} cycles/s`);
  return rate;
}

/** add -> lease -> ack through the node and the AOF, `loops` at a time, for `seconds`, beside `idleQueues` queues. */
async function measureNode(
  durability: 'default' | 'fsync',
  loops: number,
  seconds: number,
  idleQueues = 0,
): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-bench-q-'));
  const node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec' });
  try {
    for (let i = 0; i < idleQueues; i++) {
      await node.queue({
        op: 'add',
        queue: `idle-${i}`,
        jobs: [{ name: 'later', opts: { delay: 3_600_000 } }],
      });
    }
    await node.queue({
      op: 'setConfig',
      queue: 'cycle',
      config: { durability, retention: { completed: true, failed: 1000 } },
    });
    const rate = await runLoops((request) => node.queue(request), loops, seconds);
    console.log(
      `node + AOF (appendfsync everysec, queue durability ${durability}, ${loops} loops` +
        `${idleQueues > 0 ? `, ${idleQueues} idle queues` : ''}): ${Math.round(rate)} cycles/s`,
    );
    return rate;
  } finally {
    await node.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const mode = process.env.BENCH_ONLY;
if (!mode || mode === 'memory') {
  measureThroughput();
  measureMemory();
}
if (!mode || mode === 'node') {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const summary = (rates: number[]) => {
    const sorted = [...rates].sort((a, b) => a - b);
    return {
      median: Math.round(sorted[sorted.length >> 1] ?? 0),
      min: Math.round(sorted[0] ?? 0),
      max: Math.round(sorted[sorted.length - 1] ?? 0),
    };
  };
  const cases: Array<[string, 'default' | 'fsync' | 'harness' | 'core', number, number]> = [
    ['harness50', 'harness', 50, 0],
    ['core50', 'core', 50, 0],
    ['everysec50', 'default', 50, 0],
    ['fsync50', 'fsync', 50, 0],
    // 1000 loops shows the CPU-bound rate.
    ['everysec1000', 'default', 1000, 0],
    ['fsync1000', 'fsync', 1000, 0],
    ['everysec50IdleQueues10000', 'default', 50, 10_000],
  ];
  const rates = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, kind, loops, idle] of cases) {
      const rate =
        kind === 'harness' || kind === 'core'
          ? await measureReference(kind, loops, 3)
          : await measureNode(kind, loops, 3, idle);
      rates.get(name)?.push(rate);
    }
  }
  // Per round: the node's rate as a share of the references measured just before it.
  const perRound = (name: string, reference: string) =>
    (rates.get(name) ?? []).map((rate, i) => rate / ((rates.get(reference) ?? [])[i] ?? Number.NaN));
  const node: Record<string, unknown> = {};
  for (const [name, list] of rates) node[name] = { ...summary(list), runs: list.map(Math.round) };
  results.nodeCyclesPerSec = node;
  const ratio = (list: number[]) => {
    const sorted = [...list].sort((a, b) => a - b);
    return Number((sorted[sorted.length >> 1] ?? Number.NaN).toFixed(3));
  };
  results.ratios = {
    everysec50ToCore50: ratio(perRound('everysec50', 'core50')),
    everysec50ToHarness50: ratio(perRound('everysec50', 'harness50')),
    core50ToHarness50: ratio(perRound('core50', 'harness50')),
  };
  console.log('\nmedian (min-max) cycles/s over', rounds, 'rounds:');
  for (const [name, list] of rates) {
    const { median, min, max } = summary(list);
    console.log(`  ${name.padEnd(28)} ${median} (${min}-${max})`);
  }
  console.log('median per-round ratios:', results.ratios);
}
const out = join(
  import.meta.dirname,
  'results',
  `queue-core-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
);
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`wrote ${out}`);
