/**
 * HTTP API benchmark (not a test): a real `aofq server` process, started here
 * on a fresh temporary data directory and stopped by its PID at the end, under
 * a lean closed-loop load generator in this process (an undici Pool of 50
 * keep-alive connections, one request in flight on each). Jobs carry 100-byte
 * data. For a queue with `durability: default` and one with `fsync`
 * (appendfsync everysec):
 *
 *  - enqueue: POST /v1/queues/{q}/jobs, requests/s and latency;
 *  - end to end: 25 producers enqueueing while 25 consumers lease (count 10,
 *    short long polls) and ack each job; acked jobs/s;
 *  - bulk: POST /v1/queues/{q}/jobs/bulk with 100 jobs a request; jobs/s.
 *
 * The peer, measured in the same run with the same load generator, is a bare
 * node:http server in its own process that reads the JSON body, parses it and
 * answers a JSON object: the cost of an HTTP JSON request in Node.js without
 * aofq. After one unmeasured warm-up of each server (JIT, connections, the
 * AOF file), each figure is the median of --runs runs; each run is bounded by a
 * request/job count and a time cap. The load generator shares the machine's
 * cores with the server, so figures are lower bounds of what the server does.
 *
 * Run: node --import tsx bench/http.ts [--requests 20000] [--e2e-jobs 20000]
 *      [--bulk-jobs 200000] [--runs 3] [--cap-seconds 15]
 * Prints a table and writes bench/results/http-<time>.json.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { Pool } from 'undici';
import { freePort } from './suite/procs.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CONNECTIONS = 50;
const PRODUCERS = 25;
const CONSUMERS = CONNECTIONS - PRODUCERS;
const LEASE_COUNT = 10;
const BULK_SIZE = 100;
const READY_TIMEOUT_MS = 30_000;
/** 100 bytes of JSON as each job's data. */
const DATA = {
  to: 'someone@example.com',
  body: 'x'.repeat(100 - '{"to":"someone@example.com","body":""}'.length),
};

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
}

const options = new Command('bench/http.ts')
  .option('--requests <n>', 'enqueue requests a run', positive, 20_000)
  .option('--e2e-jobs <n>', 'jobs a run through enqueue, lease and ack', positive, 20_000)
  .option('--bulk-jobs <n>', 'jobs a run in bulk requests of 100', positive, 200_000)
  .option('--runs <n>', 'runs of each measurement (the median is reported)', positive, 3)
  .option('--cap-seconds <n>', 'time cap of one run', positive, 15)
  .parse()
  .opts<{ requests: number; e2eJobs: number; bulkJobs: number; runs: number; capSeconds: number }>();

interface Child {
  readonly process: ChildProcess;
  readonly url: string;
  output(): string;
}

async function startChild(args: readonly string[], port: number, readyPath: string): Promise<Child> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (s: string): void => {
    if (output.length < 64 * 1024) output += s;
  };
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited ${child.exitCode}:\n${output}`);
    const ready = await fetch(`${url}${readyPath}`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return { process: child, url, output: () => output };
    if (Date.now() > deadline) {
      stopChild(child);
      throw new Error(`not ready in ${READY_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** SIGTERM by PID, SIGKILL if it is still there after 10 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

/** A node:http server that parses a JSON body and answers a small JSON object: the peer. */
const PEER_SOURCE = `
import { createServer } from 'node:http';
const reply = JSON.stringify({ id: '1', name: 'bench', state: 'waiting', timestamp: 0, attemptsMade: 0 });
createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'POST') JSON.parse(Buffer.concat(chunks).toString('utf8'));
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
    res.end(reply);
  });
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

interface RunResult {
  count: number;
  seconds: number;
  errors: number;
  /** ms, per request (enqueue only). */
  latencies: number[];
  capped: boolean;
}

/**
 * `workers` loops, each sending one request after another, until `count`
 * requests are claimed or the cap passes. `send` returns whether the reply
 * was the expected one.
 */
async function closedLoop(
  workers: number,
  count: number,
  capMs: number,
  send: (i: number) => Promise<boolean>,
  timeIt = false,
): Promise<RunResult> {
  let claimed = 0;
  let done = 0;
  let errors = 0;
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + capMs;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (claimed < count && performance.now() < deadline) {
        const i = claimed++;
        const t = timeIt ? performance.now() : 0;
        const ok = await send(i);
        if (timeIt) latencies.push(performance.now() - t);
        if (ok) done++;
        else errors++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { count: done, seconds, errors, latencies, capped: claimed < count };
}

async function post(pool: Pool, path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await pool.request({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? null : JSON.parse(text) };
}

async function enqueueRun(pool: Pool, queue: string): Promise<RunResult> {
  const body = JSON.stringify({ name: 'bench', data: DATA });
  return closedLoop(
    CONNECTIONS,
    options.requests,
    options.capSeconds * 1000,
    async () => {
      const response = await pool.request({
        method: 'POST',
        path: `/v1/queues/${queue}/jobs`,
        headers: { 'content-type': 'application/json' },
        body,
      });
      await response.body.dump();
      return response.statusCode === 201;
    },
    true,
  );
}

async function bulkRun(pool: Pool, queue: string): Promise<RunResult> {
  const body = JSON.stringify({
    jobs: Array.from({ length: BULK_SIZE }, () => ({ name: 'bench', data: DATA })),
  });
  const requests = Math.ceil(options.bulkJobs / BULK_SIZE);
  const result = await closedLoop(CONNECTIONS, requests, options.capSeconds * 1000, async () => {
    const response = await pool.request({
      method: 'POST',
      path: `/v1/queues/${queue}/jobs/bulk`,
      headers: { 'content-type': 'application/json' },
      body,
    });
    await response.body.dump();
    return response.statusCode === 201;
  });
  return { ...result, count: result.count * BULK_SIZE };
}

/** Producers and consumers at once; counts acked jobs. */
async function endToEndRun(pool: Pool, queue: string): Promise<RunResult> {
  const jobs = options.e2eJobs;
  const capMs = options.capSeconds * 1000;
  const started = performance.now();
  const deadline = started + capMs;
  let produced = 0;
  let acked = 0;
  let errors = 0;
  const body = JSON.stringify({ name: 'bench', data: DATA });
  const producers = Array.from({ length: PRODUCERS }, async () => {
    while (produced < jobs && performance.now() < deadline) {
      produced++;
      const response = await pool.request({
        method: 'POST',
        path: `/v1/queues/${queue}/jobs`,
        headers: { 'content-type': 'application/json' },
        body,
      });
      await response.body.dump();
      if (response.statusCode !== 201) errors++;
    }
  });
  const consumers = Array.from({ length: CONSUMERS }, async () => {
    while (acked < jobs && performance.now() < deadline) {
      const lease = await post(pool, `/v1/queues/${queue}/leases`, {
        count: LEASE_COUNT,
        waitMs: 50,
        leaseMs: 60_000,
      });
      if (lease.status !== 200) {
        errors++;
        continue;
      }
      for (const job of (lease.json as { jobs: Array<{ id: string; token: number }> }).jobs) {
        const ack = await post(pool, `/v1/queues/${queue}/jobs/${job.id}/ack`, { token: job.token });
        if (ack.status === 200) acked++;
        else errors++;
      }
    }
  });
  await Promise.all([...producers, ...consumers]);
  const seconds = (performance.now() - started) / 1000;
  return { count: acked, seconds, errors, latencies: [], capped: acked < jobs };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

interface Measurement {
  scenario: 'enqueue' | 'end-to-end' | 'bulk enqueue';
  target: 'aofq' | 'node:http peer';
  durability: 'default' | 'fsync' | '-';
  unit: 'requests/s' | 'jobs/s';
  runs: Array<{
    rate: number;
    count: number;
    seconds: number;
    errors: number;
    capped: boolean;
    p50Ms?: number;
    p99Ms?: number;
  }>;
  median: number;
  p50Ms?: number;
  p99Ms?: number;
}

function summarize(
  scenario: Measurement['scenario'],
  target: Measurement['target'],
  durability: Measurement['durability'],
  unit: Measurement['unit'],
  results: RunResult[],
): Measurement {
  const runs = results.map((r) => ({
    rate: r.count / r.seconds,
    count: r.count,
    seconds: r.seconds,
    errors: r.errors,
    capped: r.capped,
    ...(r.latencies.length > 0
      ? { p50Ms: percentile(r.latencies, 50), p99Ms: percentile(r.latencies, 99) }
      : {}),
  }));
  const m: Measurement = {
    scenario,
    target,
    durability,
    unit,
    runs,
    median: median(runs.map((r) => r.rate)),
  };
  if (runs[0]?.p50Ms !== undefined) {
    m.p50Ms = median(runs.map((r) => r.p50Ms ?? Number.NaN));
    m.p99Ms = median(runs.map((r) => r.p99Ms ?? Number.NaN));
  }
  for (const [i, run] of runs.entries()) {
    const flags = `${run.errors > 0 ? `, ${run.errors} errors` : ''}${run.capped ? ', capped' : ''}`;
    process.stderr.write(
      `  ${target} ${scenario} ${durability} run ${i + 1}: ${run.rate.toFixed(0)} ${unit} (${run.count} in ${run.seconds.toFixed(2)} s${flags})\n`,
    );
  }
  return m;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(os.tmpdir(), 'aofq-bench-http-'));
  const children: ChildProcess[] = [];
  const pools: Pool[] = [];
  try {
    const port = await freePort();
    const aofq = await startChild(
      [
        '--import',
        'tsx',
        join(ROOT, 'src/cli/main.ts'),
        'server',
        '--dir',
        dir,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--resp-port',
        '0',
        '--appendfsync',
        'everysec',
        '--loglevel',
        'warning',
      ],
      port,
      '/readyz',
    );
    children.push(aofq.process);
    const peerPort = await freePort();
    const peer = await startChild(
      ['--input-type=module', '-e', PEER_SOURCE, String(peerPort)],
      peerPort,
      '/',
    );
    children.push(peer.process);
    const pool = new Pool(aofq.url, { connections: CONNECTIONS, pipelining: 1 });
    const peerPool = new Pool(peer.url, { connections: CONNECTIONS, pipelining: 1 });
    pools.push(pool, peerPool);

    process.stderr.write(
      `aofq server pid ${aofq.process.pid} (${aofq.url}), peer pid ${peer.process.pid}; ${CONNECTIONS} connections, ` +
        `${options.runs} runs, cap ${options.capSeconds} s a run\n`,
    );
    const measurements: Measurement[] = [];
    let serial = 0;
    /** A fresh queue for each run, obliterated after it, so that runs do not grow the server's state. */
    const withQueue = async (durability: 'default' | 'fsync', fn: (queue: string) => Promise<RunResult>) => {
      const queue = `bench-${durability}-${serial++}`;
      const put = await pool.request({
        method: 'PUT',
        path: `/v1/queues/${queue}`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ durability }),
      });
      await put.body.dump();
      if (put.statusCode !== 200) throw new Error(`PUT /v1/queues/${queue}: ${put.statusCode}`);
      try {
        return await fn(queue);
      } finally {
        const del = await pool.request({ method: 'DELETE', path: `/v1/queues/${queue}?force=true` });
        await del.body.dump();
      }
    };
    const repeat = async (fn: () => Promise<RunResult>): Promise<RunResult[]> => {
      const results: RunResult[] = [];
      for (let r = 0; r < options.runs; r++) results.push(await fn());
      return results;
    };

    const peerBody = { name: 'bench', data: DATA };
    const peerEnqueue = (): Promise<RunResult> =>
      closedLoop(
        CONNECTIONS,
        options.requests,
        options.capSeconds * 1000,
        async () => (await post(peerPool, '/v1/queues/peer/jobs', peerBody)).status === 201,
        true,
      );
    // Warm-up, not measured: both servers' JIT, the connections, the AOF file.
    await peerEnqueue();
    await withQueue('default', (q) => enqueueRun(pool, q));
    await withQueue('default', (q) => endToEndRun(pool, q));
    measurements.push(summarize('enqueue', 'node:http peer', '-', 'requests/s', await repeat(peerEnqueue)));
    for (const durability of ['default', 'fsync'] as const) {
      measurements.push(
        summarize(
          'enqueue',
          'aofq',
          durability,
          'requests/s',
          await repeat(() => withQueue(durability, (q) => enqueueRun(pool, q))),
        ),
      );
      measurements.push(
        summarize(
          'end-to-end',
          'aofq',
          durability,
          'jobs/s',
          await repeat(() => withQueue(durability, (q) => endToEndRun(pool, q))),
        ),
      );
      measurements.push(
        summarize(
          'bulk enqueue',
          'aofq',
          durability,
          'jobs/s',
          await repeat(() => withQueue(durability, (q) => bulkRun(pool, q))),
        ),
      );
    }

    const peerRate = measurements[0]?.median ?? Number.NaN;
    const fmt = (n: number | undefined, digits = 0): string =>
      n === undefined || Number.isNaN(n)
        ? '-'
        : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
    process.stdout.write(
      `\nHTTP API, ${CONNECTIONS} connections, 100-byte job data, appendfsync everysec, median of ${options.runs} runs\n\n` +
        '| scenario | target | queue durability | median | unit | runs | p50 ms | p99 ms | / node:http peer |\n' +
        '|---|---|---|---:|---|---|---:|---:|---:|\n',
    );
    for (const m of measurements) {
      const vsPeer = m.unit === 'requests/s' ? `${fmt((m.median / peerRate) * 100, 1)} %` : '-';
      process.stdout.write(
        `| ${m.scenario} | ${m.target} | ${m.durability} | ${fmt(m.median)} | ${m.unit} | ${m.runs.map((r) => fmt(r.rate)).join(', ')} | ` +
          `${fmt(m.p50Ms, 2)} | ${fmt(m.p99Ms, 2)} | ${vsPeer} |\n`,
      );
    }
    const errors = measurements.reduce((sum, m) => sum + m.runs.reduce((s, r) => s + r.errors, 0), 0);
    if (errors > 0)
      process.stdout.write(`\n${errors} requests got an unexpected status (see the runs above)\n`);

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = join(ROOT, 'bench', 'results', `http-${stamp}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          cpus: os.cpus().length,
          cpuModel: os.cpus()[0]?.model,
          settings: {
            ...options,
            connections: CONNECTIONS,
            producers: PRODUCERS,
            consumers: CONSUMERS,
            leaseCount: LEASE_COUNT,
            bulkSize: BULK_SIZE,
            dataBytes: JSON.stringify(DATA).length,
            appendfsync: 'everysec',
          },
          measurements,
          errors,
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`\nresults: ${out}\n`);
  } finally {
    for (const p of pools) await p.close();
    for (const child of children) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
