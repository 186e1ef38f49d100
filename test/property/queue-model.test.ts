// Model-based test of the queue core: random sequences of every job operation,
// clock advances and ticks run against Queues and against a small reference
// model (plain arrays, O(n)); replies, per-state job lists, counts and job
// counters must agree after every step. Then replay determinism: the records a
// random workload produced, and the snapshot records, rebuild an equal digest.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import {
  JOB_STATES,
  type JobState,
  type QueueRequest,
  Queues,
  recordToBytes,
} from '../../src/queue/index.js';

const START = 1_700_000_000_000;
const MAX_ATTEMPTS = 2;
const BACKOFF_MS = 50;
const KEEP = 5;
const LIMITER = { max: 3, duration: 100 };

interface ModelJob {
  id: string;
  priority: number;
  lifo: boolean;
  attempts: number;
  state: JobState;
  key: number;
  seq: number;
  token: number;
  attemptsMade: number;
  attemptsStarted: number;
  stalledCounter: number;
}

type Reply = { code: string } | { ok: unknown };

/** The reference: the documented semantics, written the obvious way. */
class Model {
  now = START;
  paused = false;
  idCounter = 0;
  tokenCounter = 0;
  seq = 0;
  windowStart = -1;
  windowCount = 0;
  readonly jobs = new Map<string, ModelJob>();
  waiting: ModelJob[] = [];

  constructor(readonly limited: boolean) {}

  list(state: JobState): ModelJob[] {
    if (state === 'waiting') return [...this.waiting];
    return [...this.jobs.values()]
      .filter((j) => j.state === state)
      .sort((a, b) => a.key - b.key || a.seq - b.seq);
  }

  private enterReady(job: ModelJob): void {
    job.seq = ++this.seq;
    if (job.priority > 0) {
      job.state = 'prioritized';
      job.key = job.priority;
    } else {
      job.state = 'waiting';
      job.key = 0;
      if (job.lifo) this.waiting.unshift(job);
      else this.waiting.push(job);
    }
  }

  private leave(job: ModelJob): void {
    if (job.state === 'waiting') this.waiting = this.waiting.filter((j) => j !== job);
  }

  private enter(job: ModelJob, state: JobState, key: number): void {
    job.state = state;
    job.key = key;
    job.seq = ++this.seq;
  }

  private trim(state: JobState): void {
    const finished = this.list(state);
    for (const job of finished.slice(0, Math.max(0, finished.length - KEEP))) this.jobs.delete(job.id);
  }

  private fail(job: ModelJob, stalled: boolean, retry: boolean, delayMs: number | undefined): string {
    job.attemptsMade++;
    job.token = 0;
    if (stalled) job.stalledCounter++;
    if (retry && job.attemptsMade < (job.attempts || MAX_ATTEMPTS)) {
      const delay = delayMs ?? BACKOFF_MS;
      if (delay > 0) this.enter(job, 'delayed', this.now + delay);
      else this.enterReady(job);
      return job.state;
    }
    this.enter(job, 'failed', this.now);
    this.trim('failed');
    return 'failed';
  }

  timers(): void {
    for (;;) {
      const due = this.list('active')[0];
      if (due === undefined || due.key > this.now) break;
      this.fail(due, true, true, undefined);
    }
    for (const job of this.list('delayed')) if (job.key <= this.now) this.enterReady(job);
  }

  private live(id: string, token: number): ModelJob | null {
    const job = this.jobs.get(id);
    if (job === undefined || job.state !== 'active' || job.token !== token || job.key <= this.now)
      return null;
    return job;
  }

  apply(op: Op): Reply {
    switch (op.kind) {
      case 'add': {
        const out: Array<[string, boolean]> = [];
        const fresh: Array<[ModelJob, JobSpec]> = [];
        for (const spec of op.jobs) {
          if (
            spec.jobId !== undefined &&
            (this.jobs.has(spec.jobId) || fresh.some(([j]) => j.id === spec.jobId))
          ) {
            out.push([spec.jobId, true]);
            continue;
          }
          const id = spec.jobId ?? String(++this.idCounter);
          const job: ModelJob = {
            id,
            priority: spec.priority,
            lifo: spec.lifo,
            attempts: spec.attempts,
            state: 'waiting',
            key: 0,
            seq: 0,
            token: 0,
            attemptsMade: 0,
            attemptsStarted: 0,
            stalledCounter: 0,
          };
          fresh.push([job, spec]);
          out.push([id, false]);
        }
        for (const [job, spec] of fresh) {
          this.jobs.set(job.id, job);
          if (spec.delay > 0) this.enter(job, 'delayed', this.now + spec.delay);
          else this.enterReady(job);
        }
        return { ok: out };
      }
      case 'lease': {
        this.timers();
        if (this.paused) return { ok: [] };
        const ready = this.waiting.length + this.list('prioritized').length;
        let allowed = Number.MAX_SAFE_INTEGER;
        const fresh = this.windowStart < 0 || this.now >= this.windowStart + LIMITER.duration;
        if (this.limited) allowed = fresh ? LIMITER.max : LIMITER.max - this.windowCount;
        const n = Math.min(op.count, ready, allowed);
        if (n > 0 && this.limited) {
          if (fresh) {
            this.windowStart = this.now;
            this.windowCount = 0;
          }
          this.windowCount += n;
        }
        const out: Array<[string, number]> = [];
        for (let i = 0; i < n; i++) {
          const job = this.waiting.shift() ?? (this.list('prioritized')[0] as ModelJob);
          job.token = ++this.tokenCounter;
          job.attemptsStarted++;
          this.enter(job, 'active', this.now + op.leaseMs);
          out.push([job.id, job.token]);
        }
        return { ok: out };
      }
      case 'ack': {
        const job = this.live(op.id, op.token);
        if (!job) return { code: 'AOFQ_ERR_LEASE_LOST' };
        job.attemptsMade++;
        job.token = 0;
        this.enter(job, 'completed', this.now);
        this.trim('completed');
        return { ok: op.id };
      }
      case 'nack': {
        const job = this.live(op.id, op.token);
        if (!job) return { code: 'AOFQ_ERR_LEASE_LOST' };
        return { ok: this.fail(job, false, op.retry, op.delayMs) };
      }
      case 'release': {
        const job = this.live(op.id, op.token);
        if (!job) return { code: 'AOFQ_ERR_LEASE_LOST' };
        job.token = 0;
        if (op.delayMs > 0) this.enter(job, 'delayed', this.now + op.delayMs);
        else this.enterReady(job);
        return { ok: job.state };
      }
      case 'extend': {
        const job = this.live(op.id, op.token);
        if (!job) return { code: 'AOFQ_ERR_LEASE_LOST' };
        job.key = this.now + op.leaseMs;
        return { ok: job.key };
      }
      case 'promote': {
        const job = this.jobs.get(op.id);
        if (!job) return { code: 'AOFQ_ERR_JOB_NOT_FOUND' };
        if (job.state !== 'delayed') return { code: 'AOFQ_ERR_JOB_STATE' };
        this.enterReady(job);
        return { ok: [op.id] };
      }
      case 'remove': {
        const job = this.jobs.get(op.id);
        if (!job) return { code: 'AOFQ_ERR_JOB_NOT_FOUND' };
        if (job.state === 'active') return { code: 'AOFQ_ERR_JOB_STATE' };
        this.leave(job);
        this.jobs.delete(op.id);
        return { ok: op.id };
      }
      case 'retryJobs': {
        const ids: string[] = [];
        for (const job of this.list('failed')) {
          job.attemptsMade = 0;
          job.stalledCounter = 0;
          this.enterReady(job);
          ids.push(job.id);
        }
        return { ok: ids };
      }
      case 'retryJob': {
        const job = this.jobs.get(op.id);
        if (!job) return { code: 'AOFQ_ERR_JOB_NOT_FOUND' };
        if (job.state !== op.state) return { code: 'AOFQ_ERR_JOB_STATE' };
        if (op.reset) job.attemptsMade = 0;
        this.enterReady(job);
        return { ok: job.state };
      }
      case 'pause':
      case 'resume':
        this.paused = op.kind === 'pause';
        return { ok: this.paused };
      case 'advance':
        this.now += op.ms;
        return { ok: null };
      case 'tick':
        this.timers();
        return { ok: null };
    }
  }
}

interface JobSpec {
  priority: number;
  lifo: boolean;
  delay: number;
  attempts: number;
  jobId: string | undefined;
}

type Op =
  | { kind: 'add'; jobs: JobSpec[] }
  | { kind: 'lease'; count: number; leaseMs: number }
  | { kind: 'ack'; id: string; token: number }
  | { kind: 'nack'; id: string; token: number; retry: boolean; delayMs: number | undefined }
  | { kind: 'release'; id: string; token: number; delayMs: number }
  | { kind: 'extend'; id: string; token: number; leaseMs: number }
  | { kind: 'promote'; id: string }
  | { kind: 'remove'; id: string }
  | { kind: 'retryJobs' }
  | { kind: 'retryJob'; id: string; state: 'failed' | 'completed'; reset: boolean }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'advance'; ms: number }
  | { kind: 'tick' };

/** Ops whose target is chosen against the current state: `pick` indexes the known jobs, `stale` spoils the token. */
type Draft =
  | { kind: 'add'; jobs: JobSpec[] }
  | { kind: 'lease'; count: number; leaseMs: number }
  | {
      kind: 'ack' | 'nack' | 'release' | 'extend';
      pick: number;
      stale: boolean;
      retry: boolean;
      delayMs: number;
    }
  | { kind: 'promote' | 'remove'; pick: number }
  | { kind: 'retryJob'; pick: number; completed: boolean; reset: boolean }
  | { kind: 'retryJobs' | 'pause' | 'resume' | 'tick' }
  | { kind: 'advance'; ms: number };

const jobSpec: fc.Arbitrary<JobSpec> = fc.record({
  priority: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 3 })),
  lifo: fc.boolean(),
  delay: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 300 })),
  attempts: fc.constantFrom(0, 1, 3),
  jobId: fc.option(fc.constantFrom('alpha', 'beta', 'gamma'), { nil: undefined, freq: 5 }),
});

const draft: fc.Arbitrary<Draft> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      jobs: fc.array(jobSpec, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('lease' as const),
      count: fc.integer({ min: 1, max: 4 }),
      leaseMs: fc.constantFrom(100, 150, 400),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constantFrom('ack' as const, 'nack' as const, 'release' as const, 'extend' as const),
      pick: fc.nat(20),
      stale: fc.boolean(),
      retry: fc.boolean(),
      delayMs: fc.constantFrom(-1, 0, 30),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constantFrom('promote' as const, 'remove' as const), pick: fc.nat(20) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constantFrom('retryJobs' as const, 'pause' as const, 'resume' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('retryJob' as const),
      pick: fc.nat(20),
      completed: fc.boolean(),
      reset: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 200 }) }),
  },
);

/** Turns a draft into a concrete op against the model's current jobs. */
function concretize(model: Model, d: Draft): Op {
  const known = [...model.jobs.values()].sort((a, b) => a.id.localeCompare(b.id));
  const active = model.list('active');
  switch (d.kind) {
    case 'ack':
    case 'nack':
    case 'release':
    case 'extend': {
      const job =
        active.length > 0 ? active[d.pick % active.length] : known[d.pick % Math.max(1, known.length)];
      const id = job?.id ?? '1';
      const token = job === undefined ? 1 : Math.max(1, d.stale ? job.token - 1 : job.token);
      if (d.kind === 'ack') return { kind: 'ack', id, token };
      if (d.kind === 'nack')
        return { kind: 'nack', id, token, retry: d.retry, delayMs: d.delayMs < 0 ? undefined : d.delayMs };
      if (d.kind === 'release') return { kind: 'release', id, token, delayMs: Math.max(0, d.delayMs) };
      return { kind: 'extend', id, token, leaseMs: 100 + Math.max(0, d.delayMs) };
    }
    case 'promote':
    case 'remove': {
      const delayed = model.list('delayed');
      const pool = d.kind === 'promote' && delayed.length > 0 && d.pick % 2 === 0 ? delayed : known;
      return { kind: d.kind, id: pool[d.pick % Math.max(1, pool.length)]?.id ?? 'missing' };
    }
    case 'retryJob': {
      // Mostly a finished job with its own state; sometimes any job, or the other finished state (refused).
      const finished = [...model.list('failed'), ...model.list('completed')];
      const pool = finished.length > 0 && d.pick % 4 !== 0 ? finished : known;
      const job = pool[d.pick % Math.max(1, pool.length)];
      const own = job?.state === 'completed' || job?.state === 'failed' ? job.state : undefined;
      const asked = d.completed ? 'completed' : 'failed';
      const state = own !== undefined && d.pick % 5 !== 0 ? own : asked;
      return { kind: 'retryJob', id: job?.id ?? 'missing', state, reset: d.reset };
    }
    default:
      return d;
  }
}

const QUEUE = 'q';

function toRequest(op: Op): QueueRequest | null {
  switch (op.kind) {
    case 'add':
      return {
        op: 'add',
        queue: QUEUE,
        jobs: op.jobs.map((spec) => ({
          name: 'job',
          data: { spec },
          opts: {
            ...(spec.priority ? { priority: spec.priority } : {}),
            ...(spec.lifo ? { lifo: true } : {}),
            ...(spec.delay ? { delay: spec.delay } : {}),
            ...(spec.attempts ? { attempts: spec.attempts } : {}),
            ...(spec.jobId !== undefined ? { jobId: spec.jobId } : {}),
          },
        })),
      };
    case 'lease':
      return { op: 'lease', queue: QUEUE, count: op.count, leaseMs: op.leaseMs };
    case 'ack':
      return { op: 'ack', queue: QUEUE, id: op.id, token: op.token };
    case 'nack':
      return {
        op: 'nack',
        queue: QUEUE,
        id: op.id,
        token: op.token,
        failedReason: 'boom',
        retry: op.retry,
        ...(op.delayMs === undefined ? {} : { delayMs: op.delayMs }),
      };
    case 'release':
      return { op: 'release', queue: QUEUE, id: op.id, token: op.token, delayMs: op.delayMs };
    case 'extend':
      return { op: 'extend', queue: QUEUE, id: op.id, token: op.token, leaseMs: op.leaseMs };
    case 'promote':
      return { op: 'promote', queue: QUEUE, id: op.id };
    case 'remove':
      return { op: 'remove', queue: QUEUE, id: op.id };
    case 'retryJobs':
      return { op: 'retryJobs', queue: QUEUE };
    case 'retryJob':
      return { op: 'retryJob', queue: QUEUE, id: op.id, state: op.state, resetAttemptsMade: op.reset };
    case 'pause':
    case 'resume':
      return { op: op.kind, queue: QUEUE };
    default:
      return null;
  }
}

/** The implementation's reply, in the model's shape. */
function summarize(op: Op, result: unknown): unknown {
  const r = result as Record<string, unknown>;
  switch (op.kind) {
    case 'add':
      return (r.jobs as Array<{ id: string; duplicate: boolean }>).map((j) => [j.id, j.duplicate]);
    case 'lease':
      return (r.jobs as Array<{ job: { id: string }; token: number }>).map((l) => [l.job.id, l.token]);
    case 'ack':
    case 'remove':
      return r.id;
    case 'nack':
    case 'release':
    case 'retryJob':
      return r.state;
    case 'extend':
      return r.leaseUntil;
    case 'promote':
    case 'retryJobs':
      return r.ids;
    case 'pause':
    case 'resume':
      return r.paused;
    default:
      return null;
  }
}

function digest(queues: Queues): string {
  const hash = createHash('sha256');
  queues.digest(hash);
  return hash.digest('hex');
}

interface RunOutcome {
  queues: Queues;
  records: Array<Array<Buffer | string | number>>;
}

function runAgainstModel(drafts: Draft[], limited: boolean): RunOutcome {
  const model = new Model(limited);
  const queues = new Queues({ random: () => 0.5 });
  const records: Array<Array<Buffer | string | number>> = [];
  const config = {
    maxAttempts: MAX_ATTEMPTS,
    backoff: { type: 'fixed' as const, delay: BACKOFF_MS },
    retention: { completed: KEEP, failed: KEEP },
    limiter: limited ? LIMITER : null,
  };
  records.push(...queues.execute({ op: 'setConfig', queue: QUEUE, config }, { nowMs: START }).records);
  for (const [step, d] of drafts.entries()) {
    const op = concretize(model, d);
    const expected = model.apply(op);
    let actual: Reply;
    const request = toRequest(op);
    if (op.kind === 'tick') records.push(...queues.tick({ nowMs: model.now }).records);
    if (request !== null) {
      try {
        const out = queues.execute(request, { nowMs: model.now });
        records.push(...out.records);
        actual = { ok: summarize(op, out.result) };
      } catch (err) {
        if (!isAofqError(err)) throw err;
        actual = { code: err.code };
      }
    } else actual = { ok: null };
    const context = `step ${step}: ${JSON.stringify(op)}`;
    expect(actual, context).toEqual(expected);
    for (const state of JOB_STATES) {
      const listed = queues.execute(
        { op: 'listJobs', queue: QUEUE, state, limit: 1000 },
        { nowMs: model.now },
      ).result;
      const actualJobs = listed.jobs.map((j) => [j.id, j.attemptsMade, j.attemptsStarted, j.stalledCounter]);
      const modelJobs = model
        .list(state)
        .map((j) => [j.id, j.attemptsMade, j.attemptsStarted, j.stalledCounter]);
      expect(actualJobs, `${context} state ${state}`).toEqual(modelJobs);
    }
    const counts = queues.execute({ op: 'getJobCounts', queue: QUEUE }, { nowMs: model.now }).result;
    expect(counts.paused, context).toBe(model.paused);
    // The incremental deadline index agrees with a scan of every queue (throws if not).
    queues.verifyDeadlines();
  }
  return { queues, records };
}

describe('queue core against a reference model', () => {
  it('agrees on replies, per-state order, counts and counters (no rate limit)', () => {
    fc.assert(
      fc.property(fc.array(draft, { minLength: 1, maxLength: 60 }), (drafts) => {
        runAgainstModel(drafts, false);
      }),
      { numRuns: 150 },
    );
  });

  it('agrees with a rate limiter', () => {
    fc.assert(
      fc.property(fc.array(draft, { minLength: 1, maxLength: 60 }), (drafts) => {
        runAgainstModel(drafts, true);
      }),
      { numRuns: 75 },
    );
  });

  it('agrees on long workloads, where jobs finish and are retried (retryJob)', () => {
    fc.assert(
      fc.property(fc.array(draft, { minLength: 60, maxLength: 120 }), (drafts) => {
        runAgainstModel(drafts, false);
      }),
      { numRuns: 40 },
    );
  });

  it('replaying the records, and the snapshot records, gives an equal digest', () => {
    fc.assert(
      fc.property(fc.array(draft, { minLength: 1, maxLength: 60 }), fc.boolean(), (drafts, limited) => {
        const { queues, records } = runAgainstModel(drafts, limited);
        const replayed = new Queues();
        for (const record of records) replayed.replay(recordToBytes(record));
        expect(digest(replayed)).toBe(digest(queues));
        const rebuilt = new Queues();
        for (const record of queues.snapshotRecords(START)) rebuilt.replay(recordToBytes(record));
        expect(digest(rebuilt)).toBe(digest(queues));
      }),
      { numRuns: 75 },
    );
  });
});

describe('replay determinism with dead-lettering and jitter', () => {
  it('a random workload over two queues and a DLQ replays to the same digest', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b'), draft), { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (steps, seed) => {
          let state = seed;
          const random = () => {
            state = (state * 48271) % 2147483647;
            return state / 2147483647;
          };
          const queues = new Queues({ random });
          const records: Array<Array<Buffer | string | number>> = [];
          let nowMs = START;
          const config = {
            deadLetterQueue: 'dlq',
            maxAttempts: 2,
            backoff: { type: 'exponential' as const, delay: 20, jitter: 0.5 },
          };
          for (const queue of ['a', 'b']) {
            records.push(...queues.execute({ op: 'setConfig', queue, config }, { nowMs }).records);
          }
          const tokens = new Map<string, number>();
          for (const [queue, d] of steps) {
            const run = (request: QueueRequest) => {
              try {
                const out = queues.execute(request, { nowMs });
                records.push(...out.records);
                return out.result;
              } catch (err) {
                if (!isAofqError(err)) throw err;
                return null;
              }
            };
            if (d.kind === 'advance') nowMs += d.ms;
            else if (d.kind === 'tick') records.push(...queues.tick({ nowMs }).records);
            else if (d.kind === 'lease') {
              const leased = run({ op: 'lease', queue, count: d.count, leaseMs: d.leaseMs }) as {
                jobs: Array<{ job: { id: string }; token: number }>;
              } | null;
              for (const l of leased?.jobs ?? []) tokens.set(`${queue}/${l.job.id}`, l.token);
            } else if (d.kind === 'ack' || d.kind === 'nack' || d.kind === 'release' || d.kind === 'extend') {
              const keys = [...tokens.keys()].filter((k) => k.startsWith(`${queue}/`));
              const key = keys[d.pick % Math.max(1, keys.length)];
              if (key === undefined) continue;
              const id = key.slice(2);
              const token = tokens.get(key) ?? 1;
              if (d.kind === 'ack') run({ op: 'ack', queue, id, token, returnvalue: { d: d.pick } });
              else if (d.kind === 'nack')
                run({ op: 'nack', queue, id, token, failedReason: 'x', stacktrace: 'at y' });
              else if (d.kind === 'release')
                run({ op: 'release', queue, id, token, delayMs: Math.max(0, d.delayMs) });
              else run({ op: 'extend', queue, id, token, leaseMs: 200 });
            } else if (d.kind === 'retryJobs') run({ op: 'redrive', queue: 'dlq' });
            else if (d.kind === 'retryJob')
              run({
                op: 'retryJob',
                queue: d.completed ? queue : 'dlq',
                id: String(d.pick),
                state: d.completed ? 'completed' : 'failed',
                resetAttemptsMade: d.reset,
              });
            else {
              const request = toRequest(
                d.kind === 'promote' || d.kind === 'remove'
                  ? { kind: d.kind, id: String(d.pick) }
                  : (d as Op),
              );
              if (request !== null) run({ ...request, queue } as QueueRequest);
            }
          }
          const replayed = new Queues();
          for (const record of records) replayed.replay(recordToBytes(record));
          expect(digest(replayed)).toBe(digest(queues));
          const rebuilt = new Queues();
          for (const record of queues.snapshotRecords(nowMs)) rebuilt.replay(recordToBytes(record));
          expect(digest(rebuilt)).toBe(digest(queues));
        },
      ),
      { numRuns: 100 },
    );
  });
});
