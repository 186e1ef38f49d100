/**
 * The suite's queue load generator, run as ONE separate Node process per
 * measurement for every peer alike (aofq over HTTP or WebSocket, BullMQ's
 * Queue + Worker, beanstalkd's protocol): producers and consumers share this
 * process, as BullMQ's producer and Worker do. It measures its own CPU and the
 * server's (/proc) over the timed window, and prints one line
 * `RESULT {json}` on stdout.
 *
 * Run: node --import tsx bench/suite/loadgen.ts '<GenSpec as JSON>'
 *
 * Modes: `enqueue` (one job a request, `clients` in flight), `enqueue-bulk`
 * (`bulk` jobs a request, `inflight` requests in flight), `e2e` (producers and
 * consumers together: enqueue -> lease/push/reserve -> ack/delete until every
 * produced job is done), `populate` (load `jobs` distinct waiting jobs as fast
 * as possible) and `rewrite-impact` (aofq: enqueue latency without, then
 * during, a BGREWRITEAOF). Every loop is bounded by a job count and a time cap.
 */
import { createRequire } from 'node:module';
import net from 'node:net';
import { type Dispatcher, Pool } from 'undici';
import { payloadObject, payloadText } from './payload.js';
import { cpuMs, sleep } from './procs.js';

export type Target = 'aofq-http' | 'aofq-ws' | 'bullmq' | 'beanstalkd';
export type Mode = 'enqueue' | 'enqueue-bulk' | 'e2e' | 'populate' | 'rewrite-impact';

export interface GenSpec {
  target: Target;
  mode: Mode;
  /** aofq's HTTP port, Redis's port (BullMQ), beanstalkd's port. */
  port: number;
  serverPid: number;
  queue: string;
  jobs: number;
  capS: number;
  warmup: number;
  /** Concurrent clients / requests in flight (50). */
  clients: number;
  /** Jobs per bulk request. */
  bulk: number;
  /** Bulk requests in flight. */
  inflight: number;
  payloadBytes: number;
  /** aofq: the queue's durability. */
  durability?: 'default' | 'fsync';
  /** rewrite-impact: seconds of measured load before the rewrite starts. */
  baselineS?: number;
  /** rewrite-impact: untimed load first, at least this long (and at least `warmup` jobs). */
  warmupS?: number;
}

export interface GenResult {
  target: Target;
  mode: Mode;
  /** Jobs enqueued (enqueue modes) or completed (e2e) in the timed window. */
  jobs: number;
  secs: number;
  jobsPerS: number;
  /** Per request (enqueue) or per batch (enqueue-bulk), ms. */
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  genCpuPct: number;
  serverCpuPct: number;
  errors: number;
  capped: boolean;
  extra?: Record<string, number | string | boolean>;
}

const now = (): number => performance.now();

// --- latency samples (preallocated: the generator adds little garbage of its own) ----

class Samples {
  private readonly values: Float64Array;
  private n = 0;
  constructor(max: number) {
    this.values = new Float64Array(Math.max(1, max));
  }
  add(ms: number): void {
    if (this.n < this.values.length) this.values[this.n++] = ms;
  }
  get count(): number {
    return this.n;
  }
  copyInto(other: Samples): void {
    for (let i = 0; i < this.n; i++) other.add(this.values[i] as number);
  }
  summary(): { p50Ms: number; p99Ms: number; maxMs: number } {
    const s = this.values.subarray(0, this.n).slice().sort();
    const pct = (p: number): number =>
      s.length ? (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number) : Number.NaN;
    return { p50Ms: pct(50), p99Ms: pct(99), maxMs: s.length ? (s[s.length - 1] as number) : Number.NaN };
  }
}

// --- CPU over the timed window ----------------------------------------------------------

function cpuMark(serverPid: number): () => { genCpuPct: number; serverCpuPct: number } {
  const t0 = now();
  const gen0 = process.cpuUsage();
  const srv0 = cpuMs(serverPid);
  return () => {
    const wall = now() - t0;
    const g = process.cpuUsage(gen0);
    return {
      genCpuPct: (100 * ((g.user + g.system) / 1000)) / wall,
      serverCpuPct: (100 * (cpuMs(serverPid) - srv0)) / wall,
    };
  };
}

/** Resolves once `pred()` holds, checking every 2 ms, or at `deadline`. */
function waitUntil(pred: () => boolean, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const tick = (): void => {
      if (pred() || now() > deadline) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
}

interface E2eHooks {
  start(): void;
  end(): void;
}

/** `loops` closed loops of `perRequest` jobs a request into `queue`, until `n` jobs or `capMs`. */
type EnqueueLoops = (
  queue: string,
  n: number,
  capMs: number,
  perRequest: number,
  loops: number,
  lat: Samples | null,
) => Promise<{ done: number; errors: number }>;

/** An aofq driver's queue set-up and enqueue workloads, over its transport's `enqueueLoops`. */
function aofqEnqueueMethods(
  spec: GenSpec,
  enqueueLoops: EnqueueLoops,
): Pick<Driver, 'prepare' | 'enqueue' | 'enqueueBulk'> {
  return {
    prepare: (queue) =>
      prepareAofqQueue({ port: spec.port, durability: spec.durability ?? 'default' }, queue),
    enqueue: (queue, n, capMs, lat) => enqueueLoops(queue, n, capMs, 1, spec.clients, lat),
    enqueueBulk: (queue, n, capMs, lat) => enqueueLoops(queue, n, capMs, spec.bulk, spec.inflight, lat),
  };
}

interface Driver {
  /** Set up a queue (aofq: its durability and retention). */
  prepare(queue: string): Promise<void>;
  enqueue(
    queue: string,
    n: number,
    capMs: number,
    lat: Samples | null,
  ): Promise<{ done: number; errors: number }>;
  enqueueBulk(
    queue: string,
    n: number,
    capMs: number,
    lat: Samples | null,
  ): Promise<{ done: number; errors: number }>;
  /** Producers + consumers; resolves with completed jobs and when the last one completed. */
  /**
   * `hooks.start()` once the consumers are set up, just before the first job is produced; `hooks.end()`
   * when the last job completes (the timed window lies between the two).
   */
  e2e(
    queue: string,
    n: number,
    capMs: number,
    hooks: E2eHooks,
  ): Promise<{ done: number; produced: number; endedAt: number; errors: number }>;
  close(): Promise<void>;
}

// --- aofq over HTTP -------------------------------------------------------------------------

interface AofqQueueSetup {
  port: number;
  durability: 'default' | 'fsync';
}

async function prepareAofqQueue(s: AofqQueueSetup, queue: string): Promise<void> {
  // As BullMQ's removeOnComplete: true (failed jobs kept); the durability of the run's mode.
  const res = await fetch(`http://127.0.0.1:${s.port}/v1/queues/${queue}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      durability: s.durability,
      retention: { completed: true, failed: false },
      maxJobs: 10_000_000,
    }),
  });
  if (res.status !== 200) throw new Error(`PUT queue ${queue}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer().catch(() => {});
}

async function readBody(res: Dispatcher.ResponseData): Promise<string> {
  return res.body.text();
}

function httpDriver(spec: GenSpec, payload: string): Driver {
  const origin = `http://127.0.0.1:${spec.port}`;
  const producers = new Pool(origin, { connections: spec.clients, pipelining: 1 });
  const consumers = new Pool(origin, { connections: spec.clients, pipelining: 1 });
  const headers = { 'content-type': 'application/json' };
  const one = `{"name":"j","data":${payload}}`;
  const bulkBody = `{"jobs":[${Array.from({ length: spec.bulk }, () => one).join(',')}]}`;
  let reported = 0;
  /** POST; null on an unexpected status (the first few are printed), else the body (or '' when not wanted). */
  const post = async (
    pool: Pool,
    path: string,
    body: string,
    ok: number,
    wantBody = false,
  ): Promise<string | null> => {
    const res = await pool.request({ method: 'POST', path, headers, body });
    if (res.statusCode !== ok) {
      const text = await readBody(res);
      if (reported++ < 5) process.stderr.write(`POST ${path}: ${res.statusCode} ${text.slice(0, 300)}\n`);
      return null;
    }
    if (!wantBody) {
      await res.body.dump();
      return '';
    }
    return readBody(res);
  };
  const enqueueLoops: EnqueueLoops = async (queue, n, capMs, perRequest, loops, lat) => {
    const path = perRequest === 1 ? `/v1/queues/${queue}/jobs` : `/v1/queues/${queue}/jobs/bulk`;
    const body = perRequest === 1 ? one : bulkBody;
    return closedLoops(n, capMs, perRequest, loops, lat, async () =>
      (await post(producers, path, body, 201)) === null ? 'error' : 'ok',
    );
  };
  return {
    ...aofqEnqueueMethods(spec, enqueueLoops),
    async e2e(queue, n, capMs, hooks) {
      hooks.start();
      const deadline = now() + capMs;
      let produced = 0;
      let issued = 0;
      let producing = true;
      let done = 0;
      const end = endOnce(hooks);
      const finish = end.finish;
      let errors = 0;
      const produce = async (): Promise<void> => {
        while (issued < n && now() < deadline) {
          issued++;
          if ((await post(producers, `/v1/queues/${queue}/jobs`, one, 201)) === null) errors++;
          else produced++;
        }
      };
      const leaseBody = '{"count":1,"waitMs":200}';
      const consume = async (): Promise<void> => {
        // Bounded: every pass either leases a job or waits <= 200 ms; the drain deadline ends it.
        while (now() < deadline + capMs && (producing || done < produced)) {
          const text = await post(consumers, `/v1/queues/${queue}/leases`, leaseBody, 200, true);
          if (text === null) {
            errors++;
            continue;
          }
          const { jobs } = JSON.parse(text) as { jobs: Array<{ id: string; token: number }> };
          for (const job of jobs) {
            const acked = await post(
              consumers,
              `/v1/queues/${queue}/jobs/${job.id}/ack`,
              `{"token":${job.token}}`,
              200,
            );
            if (acked === null) errors++;
            else if (++done === n || (!producing && done === produced)) finish();
          }
        }
      };
      const consumersDone = Promise.all(Array.from({ length: spec.clients }, consume));
      await Promise.all(Array.from({ length: spec.clients }, produce));
      producing = false;
      if (done >= produced) finish();
      await consumersDone;
      finish();
      return { done, produced, endedAt: end.at(), errors };
    },
    async close() {
      await Promise.all([producers.destroy(), consumers.destroy()]);
    },
  };
}

/** The moment the last job completed, taken once: later calls (the drain after it) change nothing. */
function endOnce(hooks: { end: () => void }): { finish: () => void; at: () => number } {
  let endedAt = 0;
  return {
    finish: () => {
      if (endedAt !== 0) return;
      endedAt = now();
      hooks.end();
    },
    at: () => endedAt,
  };
}

/**
 * `loops` closed loops, each sending one request (of `perRequest` jobs) and waiting for its
 * reply, until `n` jobs are issued or `capMs` passes. `send` says how the request ended; 'stop'
 * (a closed connection) ends that loop. Latency per request goes into `lat`.
 */
async function closedLoops(
  n: number,
  capMs: number,
  perRequest: number,
  loops: number,
  lat: Samples | null,
  send: () => Promise<'ok' | 'error' | 'stop'>,
): Promise<{ done: number; errors: number }> {
  const deadline = now() + capMs;
  let issued = 0;
  let done = 0;
  let errors = 0;
  const loop = async (): Promise<void> => {
    while (issued < n && now() < deadline) {
      issued += perRequest;
      const t = now();
      const outcome = await send();
      if (outcome === 'ok') {
        done += perRequest;
        lat?.add(now() - t);
      } else {
        errors++;
        if (outcome === 'stop') break;
      }
    }
  };
  await Promise.all(Array.from({ length: loops }, loop));
  return { done, errors };
}

// --- aofq over WebSocket ------------------------------------------------------------------

/** The part of a `ws` client socket the benchmarks use (bench/ws.ts too). */
export interface Socket {
  send(data: string): void;
  close(): void;
  terminate(): void;
  on(event: 'open' | 'close', listener: () => void): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
}
const WebSocketCtor = createRequire(import.meta.url)('ws') as new (url: string) => Socket;

export function openSocket(url: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocketCtor(url);
    socket.on('open', () => resolve(socket));
    socket.on('error', reject);
  });
}

interface WsMessage {
  type: string;
  rid?: number | string;
  code?: string;
  message?: string;
  job?: { id: string };
  token?: number;
  jobs?: Array<{ job: { id: string }; token: number }>;
  acked?: string[];
  failed?: unknown[];
}

/** One connection; requests matched to replies by integer rid. */
class WsClient {
  private nextRid = 1;
  private readonly waiting = new Map<number, (m: WsMessage) => void>();
  onPush: ((m: WsMessage) => void) | null = null;
  closed = false;
  private constructor(readonly socket: Socket) {
    const closed = (): void => {
      this.closed = true;
      const waiting = [...this.waiting.values()];
      this.waiting.clear();
      for (const w of waiting) w({ type: 'error', code: 'closed', message: 'connection closed' });
    };
    socket.on('close', closed);
    socket.on('error', (err) => {
      process.stderr.write(`ws: ${err.message}\n`);
      closed();
    });
    socket.on('message', (data) => {
      const m = JSON.parse(data.toString('utf8')) as WsMessage;
      if (typeof m.rid === 'number') {
        const w = this.waiting.get(m.rid);
        if (w) {
          this.waiting.delete(m.rid);
          w(m);
          return;
        }
      }
      if (m.type === 'job' || m.type === 'jobs' || m.type === 'event') this.onPush?.(m);
      else if (m.type === 'error')
        process.stderr.write(`ws error without a waiting request: ${JSON.stringify(m)}\n`);
    });
  }
  static async open(url: string): Promise<WsClient> {
    return new WsClient(await openSocket(url));
  }
  /** Send `{type, rid, ...fields}` as text already built (`body` without braces); resolves with the reply. */
  request(type: string, body: string): Promise<WsMessage> {
    const rid = this.nextRid++;
    if (this.closed) return Promise.resolve({ type: 'error', code: 'closed', message: 'connection closed' });
    return new Promise((resolve) => {
      this.waiting.set(rid, resolve);
      this.socket.send(`{"type":"${type}","rid":${rid},${body}}`);
    });
  }
  /** Fire a request and forget the reply (it is still matched and dropped). */
  sendNoReply(type: string, body: string, onReply: (m: WsMessage) => void): void {
    const rid = this.nextRid++;
    if (this.closed) return;
    this.waiting.set(rid, onReply);
    this.socket.send(`{"type":"${type}","rid":${rid},${body}}`);
  }
  close(): void {
    this.socket.terminate();
  }
}

function wsDriver(spec: GenSpec, payload: string): Driver {
  const url = `ws://127.0.0.1:${spec.port}/v1/ws`;
  const one = `"name":"j","data":${payload}`;
  const jobsArray = `[${Array.from({ length: spec.bulk }, () => `{${one}}`).join(',')}]`;
  const opened: WsClient[] = [];
  const open = async (): Promise<WsClient> => {
    const c = await WsClient.open(url);
    opened.push(c);
    return c;
  };
  let producer: WsClient | null = null;
  const getProducer = async (): Promise<WsClient> => {
    producer ??= await open();
    return producer;
  };
  const enqueueLoops: EnqueueLoops = async (queue, n, capMs, perRequest, loops, lat) => {
    const p = await getProducer();
    const type = perRequest === 1 ? 'enqueue' : 'enqueueBatch';
    const body = perRequest === 1 ? `"queue":"${queue}",${one}` : `"queue":"${queue}","jobs":${jobsArray}`;
    let reported = 0;
    return closedLoops(n, capMs, perRequest, loops, lat, async () => {
      const r = await p.request(type, body);
      if (r.code === 'closed') return 'stop';
      if (r.type === 'ok') return 'ok';
      if (reported++ < 5) process.stderr.write(`ws ${type}: ${JSON.stringify(r)}\n`);
      return 'error';
    });
  };
  return {
    ...aofqEnqueueMethods(spec, enqueueLoops),
    async e2e(queue, n, capMs, hooks) {
      // One consumer connection with prefetch = clients (BullMQ's Worker: concurrency 50 on its connection).
      // It subscribes with `batch`: the jobs leased in one server round come in one `jobs` message, and
      // it acks them in one `ackBatch` (each ack is its own queue operation), as BullMQ's Worker completes a
      // job and fetches the next in one round trip. The producer enqueues one job a request, 50 in flight.
      const consumer = await open();
      let done = 0;
      let produced = 0;
      let producing = true;
      const end = endOnce(hooks);
      const finish = end.finish;
      let errors = 0;
      const onAcks = (m: WsMessage): void => {
        if (m.type !== 'ok' || m.acked === undefined) {
          errors++;
          return;
        }
        errors += m.failed?.length ?? 0;
        done += m.acked.length;
        if (done >= n || (!producing && done >= produced)) finish();
      };
      consumer.onPush = (m) => {
        if (m.type !== 'jobs' || m.jobs === undefined) return;
        const acks = m.jobs.map((j) => `{"id":"${j.job.id}","token":${j.token}}`).join(',');
        consumer.sendNoReply('ackBatch', `"queue":"${queue}","acks":[${acks}]`, onAcks);
      };
      const sub = await consumer.request(
        'subscribe',
        `"queue":"${queue}","prefetch":${spec.clients},"batch":true`,
      );
      if (sub.type !== 'ok') throw new Error(`subscribe: ${JSON.stringify(sub)}`);
      hooks.start();
      const deadline = now() + capMs;
      const r = await enqueueLoops(queue, n, capMs, 1, spec.clients, null);
      produced = r.done;
      errors += r.errors;
      producing = false;
      if (done >= produced) finish();
      await waitUntil(() => done >= produced, deadline + capMs);
      await consumer.request('unsubscribe', `"queue":"${queue}"`);
      finish();
      return { done, produced, endedAt: end.at(), errors };
    },
    async close() {
      for (const c of opened) c.close();
    },
  };
}

/**
 * The recovery dataset: `spec.jobs` distinct jobs in batches of `spec.bulk`,
 * `spec.inflight` batches at a time, until done or the cap. `send` stores one
 * batch of jobs [from, from + count); it throws to stop the run, or returns an
 * error text for a batch that failed (counted, the first few logged).
 */
async function populateInBatches(
  spec: GenSpec,
  what: string,
  send: (from: number, count: number) => Promise<string | null>,
): Promise<{ done: number; errors: number }> {
  const deadline = now() + spec.capS * 1000;
  let next = 0;
  let done = 0;
  let errors = 0;
  const loop = async (): Promise<void> => {
    while (next < spec.jobs && now() < deadline) {
      const from = next;
      const count = Math.min(spec.bulk, spec.jobs - from);
      next += count;
      const failure = await send(from, count);
      if (failure === null) done += count;
      else if (errors++ < 5) process.stderr.write(`${what}: ${failure}\n`);
    }
  };
  await Promise.all(Array.from({ length: spec.inflight }, loop));
  return { done, errors };
}

/** WebSocket enqueueBatch of distinct payloads (recovery's dataset). */
async function wsPopulate(spec: GenSpec): Promise<{ done: number; errors: number }> {
  const c = await WsClient.open(`ws://127.0.0.1:${spec.port}/v1/ws`);
  try {
    return await populateInBatches(spec, 'populate', async (from, count) => {
      const jobs: string[] = [];
      for (let i = from; i < from + count; i++)
        jobs.push(`{"name":"j","data":${payloadText(i, spec.payloadBytes)}}`);
      const r = await c.request('enqueueBatch', `"queue":"${spec.queue}","jobs":[${jobs.join(',')}]`);
      if (r.code === 'closed') throw new Error('populate: the WebSocket closed');
      return r.type === 'ok' ? null : JSON.stringify(r);
    });
  } finally {
    c.close();
  }
}

// --- BullMQ --------------------------------------------------------------------------------

async function bullmqDriver(spec: GenSpec, payloadIndex: number): Promise<Driver> {
  const { Queue, Worker } = await import('bullmq');
  const connection = { host: '127.0.0.1', port: spec.port, maxRetriesPerRequest: null };
  const data = payloadObject(payloadIndex, spec.payloadBytes);
  const opts = { removeOnComplete: true };
  const queues = new Map<string, InstanceType<typeof Queue>>();
  const getQueue = async (name: string): Promise<InstanceType<typeof Queue>> => {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection, defaultJobOptions: opts });
      await q.waitUntilReady();
      queues.set(name, q);
    }
    return q;
  };
  /** One BullMQ call as a closed-loop request: its errors counted, the first 5 printed, never a stop. */
  const attempt = (what: string, call: () => Promise<unknown>) => {
    let failures = 0;
    return async (): Promise<'ok' | 'error'> => {
      try {
        await call();
        return 'ok';
      } catch (err) {
        if (failures++ < 5) process.stderr.write(`bullmq ${what}: ${(err as Error).message}\n`);
        return 'error';
      }
    };
  };
  const addLoops = async (
    queue: string,
    n: number,
    capMs: number,
    lat: Samples | null,
  ): Promise<{ done: number; errors: number }> => {
    const q = await getQueue(queue);
    return closedLoops(
      n,
      capMs,
      1,
      spec.clients,
      lat,
      attempt('add', () => q.add('j', data)),
    );
  };
  return {
    prepare: async (queue) => {
      await getQueue(queue);
    },
    enqueue: addLoops,
    async enqueueBulk(queue, n, capMs, lat) {
      const q = await getQueue(queue);
      const batch = Array.from({ length: spec.bulk }, () => ({ name: 'j', data }));
      return closedLoops(
        n,
        capMs,
        batch.length,
        spec.inflight,
        lat,
        attempt('addBulk', () => q.addBulk(batch)),
      );
    },
    async e2e(queue, n, capMs, hooks) {
      await getQueue(queue);
      let done = 0;
      let produced = 0;
      let producing = true;
      const end = endOnce(hooks);
      const finish = end.finish;
      let errors = 0;
      const worker = new Worker(queue, async () => {}, {
        connection,
        concurrency: spec.clients,
        autorun: false,
      });
      worker.on('completed', () => {
        if (++done === n || (!producing && done === produced)) finish();
      });
      worker.on('error', (err) => {
        if (errors++ < 5) process.stderr.write(`bullmq worker: ${err.message}\n`);
      });
      await worker.waitUntilReady();
      const running = worker.run();
      hooks.start();
      const deadline = now() + capMs;
      const r = await addLoops(queue, n, capMs, null);
      produced = r.done;
      errors += r.errors;
      producing = false;
      if (done >= produced) finish();
      await waitUntil(() => done >= produced, deadline + capMs);
      await worker.close();
      await running.catch(() => {});
      finish();
      return { done, produced, endedAt: end.at(), errors };
    },
    async close() {
      for (const q of queues.values()) await q.close();
    },
  };
}

async function bullmqPopulate(spec: GenSpec): Promise<{ done: number; errors: number }> {
  const { Queue } = await import('bullmq');
  const q = new Queue(spec.queue, {
    connection: { host: '127.0.0.1', port: spec.port, maxRetriesPerRequest: null },
  });
  await q.waitUntilReady();
  try {
    return await populateInBatches(spec, 'bullmq populate', async (from, count) => {
      const batch = [];
      for (let i = from; i < from + count; i++)
        batch.push({ name: 'j', data: payloadObject(i, spec.payloadBytes) });
      try {
        await q.addBulk(batch);
        return null;
      } catch (err) {
        return (err as Error).message;
      }
    });
  } finally {
    await q.close();
  }
}

// --- beanstalkd ----------------------------------------------------------------------------

/** One beanstalkd connection, one request in flight. */
class Beanstalk {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: {
    resolve: (r: { line: string; body: Buffer | null }) => void;
    reject: (e: Error) => void;
  } | null = null;
  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    const fail = (err: Error): void => {
      const w = this.waiter;
      this.waiter = null;
      w?.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('beanstalkd connection closed')));
  }
  static connect(port: number): Promise<Beanstalk> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ host: '127.0.0.1', port }, () => resolve(new Beanstalk(s)));
      s.once('error', reject);
    });
  }
  private parse(): void {
    if (this.waiter === null) return;
    const eol = this.buf.indexOf('\r\n');
    if (eol < 0) return;
    const line = this.buf.toString('latin1', 0, eol);
    let used = eol + 2;
    let body: Buffer | null = null;
    if (line.startsWith('RESERVED ')) {
      const bytes = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (this.buf.length < used + bytes + 2) return;
      body = this.buf.subarray(used, used + bytes);
      used += bytes + 2;
    }
    this.buf = this.buf.subarray(used);
    const w = this.waiter;
    this.waiter = null;
    w.resolve({ line, body });
  }
  call(command: string | Buffer): Promise<{ line: string; body: Buffer | null }> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.write(command);
      if (this.buf.length > 0) this.parse();
    });
  }
  close(): void {
    this.socket.end('quit\r\n');
  }
}

function beanstalkDriver(spec: GenSpec, payload: string): Driver {
  const body = Buffer.from(payload);
  const put = Buffer.concat([Buffer.from(`put 1024 0 60 ${body.length}\r\n`), body, Buffer.from('\r\n')]);
  const conns: Beanstalk[] = [];
  const connectMany = async (count: number, tube: string, watch: boolean): Promise<Beanstalk[]> => {
    const out: Beanstalk[] = [];
    for (let i = 0; i < count; i++) {
      const c = await Beanstalk.connect(spec.port);
      conns.push(c);
      if (watch) {
        await c.call(`watch ${tube}\r\n`);
        await c.call('ignore default\r\n');
      } else await c.call(`use ${tube}\r\n`);
      out.push(c);
    }
    return out;
  };
  const putLoops = async (
    producers: Beanstalk[],
    n: number,
    capMs: number,
    lat: Samples | null,
  ): Promise<{ done: number; errors: number }> => {
    const deadline = now() + capMs;
    let issued = 0;
    let done = 0;
    let errors = 0;
    const loop = async (c: Beanstalk): Promise<void> => {
      while (issued < n && now() < deadline) {
        issued++;
        const t = now();
        const r = await c.call(put);
        if (!r.line.startsWith('INSERTED')) errors++;
        else {
          done++;
          lat?.add(now() - t);
        }
      }
    };
    await Promise.all(producers.map(loop));
    return { done, errors };
  };
  const producersByTube = new Map<string, Beanstalk[]>();
  const producersFor = async (tube: string): Promise<Beanstalk[]> => {
    let p = producersByTube.get(tube);
    if (!p) {
      p = await connectMany(spec.clients, tube, false);
      producersByTube.set(tube, p);
    }
    return p;
  };
  return {
    prepare: async (tube) => {
      await producersFor(tube);
    },
    enqueue: async (tube, n, capMs, lat) => putLoops(await producersFor(tube), n, capMs, lat),
    enqueueBulk: () => Promise.reject(new Error('beanstalkd has no bulk put')),
    async e2e(tube, n, capMs, hooks) {
      const producers = await producersFor(tube);
      const consumers = await connectMany(spec.clients, tube, true);
      let done = 0;
      let produced = 0;
      let producing = true;
      const end = endOnce(hooks);
      const finish = end.finish;
      let errors = 0;
      hooks.start();
      const deadline = now() + capMs;
      const consume = async (c: Beanstalk): Promise<void> => {
        while (now() < deadline + capMs && (producing || done < produced)) {
          const r = await c.call('reserve-with-timeout 1\r\n');
          if (r.line === 'TIMED_OUT') continue;
          if (!r.line.startsWith('RESERVED ')) {
            errors++;
            continue;
          }
          const id = r.line.split(' ')[1];
          const d = await c.call(`delete ${id}\r\n`);
          if (d.line !== 'DELETED') errors++;
          else if (++done === n || (!producing && done === produced)) finish();
        }
      };
      const consuming = Promise.all(consumers.map(consume));
      const r = await putLoops(producers, n, capMs, null);
      produced = r.done;
      errors += r.errors;
      producing = false;
      if (done >= produced) finish();
      await consuming;
      finish();
      return { done, produced, endedAt: end.at(), errors };
    },
    async close() {
      for (const c of conns) c.close();
    },
  };
}

// --- rewrite impact (aofq) -------------------------------------------------------------------

async function persistence(port: number): Promise<Record<string, number | string>> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/admin/info?section=persistence`);
  const body = (await res.json()) as { persistence: Record<string, number | string> };
  return body.persistence;
}

/**
 * Closed-loop HTTP enqueues (`clients` connections): warm-up, `baselineS` s
 * before the rewrite, the rewrite (until INFO says it finished), `baselineS` s
 * after it. "Without a rewrite" is the before and after windows together, so
 * that a drift (JIT, GC of a just-loaded heap) does not land on one side only.
 */
async function rewriteImpact(spec: GenSpec): Promise<GenResult> {
  const payload = payloadText(0, spec.payloadBytes);
  const pool = new Pool(`http://127.0.0.1:${spec.port}`, { connections: spec.clients, pipelining: 1 });
  await prepareAofqQueue({ port: spec.port, durability: 'default' }, spec.queue);
  const body = `{"name":"j","data":${payload}}`;
  const path = `/v1/queues/${spec.queue}/jobs`;
  const maxOps = 4_000_000;
  const windowS = spec.baselineS ?? 5;
  const rewriteCapMs = 600_000;
  const samples = {
    before: new Samples(maxOps / 4),
    during: new Samples(maxOps / 2),
    after: new Samples(maxOps / 4),
  };
  type Phase = 'warmup' | keyof typeof samples | 'stop';
  let phase: Phase = 'warmup';
  let errors = 0;
  let ops = 0;
  const hardDeadline = now() + (60 + 2 * windowS) * 1000 + rewriteCapMs;
  const warmUntil = now() + (spec.warmupS ?? 0) * 1000;
  const headers = { 'content-type': 'application/json' };
  const loop = async (): Promise<void> => {
    while (phase !== 'stop' && ops < maxOps && now() < hardDeadline) {
      const started: Phase = phase;
      const t = now();
      const res = await pool.request({ method: 'POST', path, headers, body });
      await res.body.dump();
      ops++;
      if (res.statusCode !== 201) errors++;
      else if (started !== 'warmup') samples[started].add(now() - t);
      if (phase === 'warmup' && ops >= spec.warmup && now() >= warmUntil) phase = 'before';
    }
  };
  const loops = Promise.all(Array.from({ length: spec.clients }, loop));
  await waitUntil(() => phase !== 'warmup', now() + 60_000);
  const cpu = cpuMark(spec.serverPid);
  await sleep(windowS * 1000);
  const rewritesBefore = Number((await persistence(spec.port)).aof_rewrites);
  phase = 'during';
  const rewriteStart = now();
  const started = await fetch(`http://127.0.0.1:${spec.port}/v1/admin/rewrite`, { method: 'POST' });
  if (started.status !== 202) {
    throw new Error(`POST /v1/admin/rewrite: ${started.status} ${await started.text()}`);
  }
  let rewriteSecs = Number.NaN;
  let rewriteStatus = 'timeout';
  for (let i = 0; i < rewriteCapMs / 100 && now() - rewriteStart < rewriteCapMs; i++) {
    await sleep(100);
    const p = await persistence(spec.port);
    const done =
      Number(p.aof_rewrites) > rewritesBefore &&
      Number(p.aof_rewrite_in_progress) === 0 &&
      Number(p.aof_rewrite_scheduled) === 0;
    if (done) {
      rewriteSecs = (now() - rewriteStart) / 1000;
      rewriteStatus = String(p.aof_last_bgrewrite_status);
      break;
    }
  }
  phase = 'after';
  await sleep(windowS * 1000);
  phase = 'stop';
  const load = cpu();
  await loops;
  await pool.destroy();
  const without = new Samples(samples.before.count + samples.after.count);
  samples.before.copyInto(without);
  samples.after.copyInto(without);
  const w = without.summary();
  const d = samples.during.summary();
  const b = samples.before.summary();
  const a = samples.after.summary();
  return {
    target: spec.target,
    mode: spec.mode,
    jobs: samples.during.count,
    secs: rewriteSecs,
    jobsPerS: samples.during.count / rewriteSecs,
    p50Ms: d.p50Ms,
    p99Ms: d.p99Ms,
    maxMs: d.maxMs,
    ...load,
    errors,
    capped: rewriteStatus === 'timeout',
    extra: {
      withoutOps: without.count,
      withoutJobsPerS: without.count / (2 * windowS),
      withoutP50Ms: w.p50Ms,
      withoutP99Ms: w.p99Ms,
      withoutMaxMs: w.maxMs,
      beforeP99Ms: b.p99Ms,
      afterP99Ms: a.p99Ms,
      rewriteSecs,
      rewriteStatus,
    },
  };
}

// --- main ----------------------------------------------------------------------------------

async function driverFor(spec: GenSpec): Promise<Driver> {
  const payload = payloadText(0, spec.payloadBytes);
  switch (spec.target) {
    case 'aofq-http':
      return httpDriver(spec, payload);
    case 'aofq-ws':
      return wsDriver(spec, payload);
    case 'bullmq':
      return bullmqDriver(spec, 0);
    case 'beanstalkd':
      return beanstalkDriver(spec, payload);
  }
}

export async function runSpec(spec: GenSpec): Promise<GenResult> {
  if (spec.mode === 'rewrite-impact') return rewriteImpact(spec);
  if (spec.mode === 'populate') {
    const cpu = cpuMark(spec.serverPid);
    const t0 = now();
    if (spec.target === 'aofq-ws')
      await prepareAofqQueue({ port: spec.port, durability: 'default' }, spec.queue);
    const r = spec.target === 'aofq-ws' ? await wsPopulate(spec) : await bullmqPopulate(spec);
    const secs = (now() - t0) / 1000;
    return {
      target: spec.target,
      mode: spec.mode,
      jobs: r.done,
      secs,
      jobsPerS: r.done / secs,
      ...cpu(),
      errors: r.errors,
      capped: r.done < spec.jobs,
    };
  }
  const d = await driverFor(spec);
  try {
    const capMs = spec.capS * 1000;
    const warmQueue = `${spec.queue}-warm`;
    const lat = new Samples(spec.jobs + 16);
    await d.prepare(warmQueue);
    await d.prepare(spec.queue);
    if (spec.mode === 'e2e') {
      if (spec.warmup > 0) await d.e2e(warmQueue, spec.warmup, capMs, { start: () => {}, end: () => {} });
      let cpu = cpuMark(spec.serverPid);
      let t0 = now();
      let used: { genCpuPct: number; serverCpuPct: number } | null = null;
      const r = await d.e2e(spec.queue, spec.jobs, capMs, {
        start: () => {
          cpu = cpuMark(spec.serverPid);
          t0 = now();
        },
        // CPU up to the last completion, not the consumers' shutdown after it.
        end: () => {
          used ??= cpu();
        },
      });
      const secs = (r.endedAt - t0) / 1000;
      used ??= cpu();
      return {
        target: spec.target,
        mode: spec.mode,
        jobs: r.done,
        secs,
        jobsPerS: r.done / secs,
        ...used,
        errors: r.errors,
        capped: r.produced < spec.jobs || r.done < r.produced,
        extra: { produced: r.produced },
      };
    }
    const run = spec.mode === 'enqueue' ? d.enqueue.bind(d) : d.enqueueBulk.bind(d);
    if (spec.warmup > 0) await run(warmQueue, spec.warmup, capMs, null);
    const cpu = cpuMark(spec.serverPid);
    const t0 = now();
    const r = await run(spec.queue, spec.jobs, capMs, lat);
    const secs = (now() - t0) / 1000;
    return {
      target: spec.target,
      mode: spec.mode,
      jobs: r.done,
      secs,
      jobsPerS: r.done / secs,
      ...lat.summary(),
      ...cpu(),
      errors: r.errors,
      capped: r.done < spec.jobs,
    };
  } finally {
    await d.close();
  }
}

const isMain = process.argv[1]?.endsWith('loadgen.ts') ?? false;
if (isMain) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as GenSpec;
  // Watchdog: the orchestrator also kills us by PID at its own cap.
  setTimeout(
    () => {
      process.stderr.write('loadgen: watchdog fired\n');
      process.exit(3);
    },
    (spec.capS * 3 + 900) * 1000,
  ).unref();
  runSpec(spec).then(
    (r) => {
      process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`loadgen failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
