// Named examples of each BullMQ semantic the queue core implements: ids and
// idempotency, priority and lifo order, backoff timings, lease fencing and
// expiry, retention, dead-lettering and redrive, the rate limiter, pause and
// the admin operations.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import { hasLoneSurrogate } from '../../src/queue/codec.js';
import {
  backoffDelay,
  type QueueEvent,
  type QueueRequest,
  type QueueResult,
  Queues,
  recordToBytes,
} from '../../src/queue/index.js';
import { AssertionError } from '../../src/util/assert.js';

const START = 1_700_000_000_000;

class Harness {
  now = START;
  readonly records: Array<Array<Buffer | string | number>> = [];
  readonly events: Array<[string, QueueEvent]> = [];
  readonly queues: Queues;

  constructor(random: () => number = Math.random) {
    this.queues = new Queues({ onEvent: (queue, event) => this.events.push([queue, event]), random });
  }

  run<R extends QueueRequest>(request: R): QueueResult<R> {
    const { result, records } = this.queues.execute(request, { nowMs: this.now });
    this.records.push(...records);
    return result;
  }

  tick(): string[] {
    const { records } = this.queues.tick({ nowMs: this.now });
    this.records.push(...records);
    return records.map((record) => record[0]?.toString() ?? '');
  }

  add(queue: string, name: string, opts?: Record<string, unknown>, data: unknown = { n: 1 }): string {
    const [job] = this.run({ op: 'add', queue, jobs: [{ name, data, opts }] }).jobs;
    return job?.id ?? '';
  }

  lease(queue: string, count = 1, leaseMs = 1000) {
    return this.run({ op: 'lease', queue, count, leaseMs });
  }

  leaseIds(queue: string, count = 1): string[] {
    return this.lease(queue, count).jobs.map((leased) => leased.job.id);
  }

  state(queue: string, id: string) {
    return this.run({ op: 'getJob', queue, id });
  }

  counts(queue: string) {
    return this.run({ op: 'getJobCounts', queue });
  }

  eventNames(queue: string): string[] {
    return this.events.filter(([name]) => name === queue).map(([, event]) => event.event);
  }
}

function digest(queues: Queues): string {
  const hash = createHash('sha256');
  queues.digest(hash);
  return hash.digest('hex');
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isAofqError(err)) return err.code;
    throw err;
  }
  throw new Error('expected an AofqError');
}

function replayed(records: Array<Array<Buffer | string | number>>): Queues {
  const queues = new Queues();
  for (const record of records) queues.replay(recordToBytes(record));
  return queues;
}

describe('ids and idempotency', () => {
  it('assigns increasing ids per queue, as BullMQ', () => {
    const h = new Harness();
    expect(h.add('a', 'x')).toBe('1');
    expect(h.add('a', 'x')).toBe('2');
    expect(h.add('b', 'x')).toBe('1');
    const { job, state } = h.state('a', '2');
    expect(state).toBe('waiting');
    expect(job.data).toBe('{"n":1}');
    expect(job.opts.timestamp).toBe(START);
  });

  it('opts.jobId makes an enqueue idempotent', () => {
    const h = new Harness();
    const first = h.run({
      op: 'add',
      queue: 'a',
      jobs: [{ name: 'x', data: 1, opts: { jobId: 'order-7' } }],
    });
    expect(first.jobs).toEqual([{ id: 'order-7', duplicate: false }]);
    const before = digest(h.queues);
    const again = h.queues.execute(
      { op: 'add', queue: 'a', jobs: [{ name: 'y', data: 2, opts: { jobId: 'order-7' } }] },
      { nowMs: START },
    );
    expect(again.result.jobs).toEqual([{ id: 'order-7', duplicate: true }]);
    expect(again.records).toHaveLength(0);
    expect(digest(h.queues)).toBe(before);
    expect(h.state('a', 'order-7').job.data).toBe('1');
    // Within one bulk too.
    const bulk = h.run({
      op: 'add',
      queue: 'a',
      jobs: [
        { name: 'z', opts: { jobId: 'k' } },
        { name: 'z', opts: { jobId: 'k' } },
      ],
    });
    expect(bulk.jobs.map((j) => j.duplicate)).toEqual([false, true]);
    // A duplicate in the middle of a bulk: the record holds exactly the fresh jobs, in order.
    const mixed = h.queues.execute(
      {
        op: 'add',
        queue: 'a',
        jobs: [{ name: 'm1', opts: { jobId: 'm' } }, { name: 'm2', opts: { jobId: 'm' } }, { name: 'm3' }],
      },
      { nowMs: START },
    );
    expect(mixed.result.jobs).toEqual([
      { id: 'm', duplicate: false },
      { id: 'm', duplicate: true },
      { id: '1', duplicate: false },
    ]);
    expect(mixed.records).toHaveLength(1);
    const record = mixed.records[0] ?? [];
    // Q.ADD, queue, count, then five arguments per fresh job.
    expect(record).toHaveLength(3 + 5 * 2);
    expect(record[2]).toBe(2);
    expect([record[3], record[4], record[8], record[9]]).toEqual(['m', 'm1', '1', 'm3']);
  });
});

describe('order', () => {
  it('leases waiting jobs first, then prioritized by priority and FIFO within a priority (BullMQ moveToActive)', () => {
    const h = new Harness();
    h.add('a', 'p5', { priority: 5 });
    h.add('a', 'p1a', { priority: 1 });
    h.add('a', 'plain');
    h.add('a', 'p1b', { priority: 1 });
    expect(h.counts('a')).toMatchObject({ waiting: 1, prioritized: 3 });
    expect(h.lease('a', 4).jobs.map((l) => l.job.name)).toEqual(['plain', 'p1a', 'p1b', 'p5']);
  });

  it('puts lifo jobs at the front of the waiting list', () => {
    const h = new Harness();
    h.add('a', 'first');
    h.add('a', 'second');
    h.add('a', 'late-1', { lifo: true });
    h.add('a', 'late-2', { lifo: true });
    expect(h.lease('a', 4).jobs.map((l) => l.job.name)).toEqual(['late-2', 'late-1', 'first', 'second']);
  });
});

describe('backoff', () => {
  it('fixed backoff retries after the same delay until attempts run out', () => {
    const h = new Harness();
    const id = h.add('a', 'x', { attempts: 3, backoff: 1000 });
    const retryAts: Array<number | null> = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      h.tick();
      const [leased] = h.lease('a').jobs;
      expect(leased?.job.id).toBe(id);
      const result = h.run({
        op: 'nack',
        queue: 'a',
        id,
        token: leased?.token ?? 0,
        failedReason: `boom ${attempt}`,
      });
      retryAts.push(result.retryAt);
      h.now = result.retryAt ?? h.now;
    }
    expect(retryAts).toEqual([START + 1000, START + 2000, null]);
    const { job, state } = h.state('a', id);
    expect(state).toBe('failed');
    expect(job.attemptsMade).toBe(3);
    expect(job.failedReason).toBe('boom 2');
    expect(h.eventNames('a')).toContain('retries-exhausted');
  });

  it('exponential backoff doubles: delay * 2^(attemptsMade-1)', () => {
    const h = new Harness();
    const id = h.add('a', 'x', { attempts: 5, backoff: { type: 'exponential', delay: 100 } });
    const delays: number[] = [];
    for (let attempt = 0; attempt < 4; attempt++) {
      h.tick();
      const [leased] = h.lease('a').jobs;
      const { retryAt } = h.run({ op: 'nack', queue: 'a', id, token: leased?.token ?? 0, failedReason: 'x' });
      delays.push((retryAt ?? 0) - h.now);
      expect(h.state('a', id).state).toBe('delayed');
      h.now = retryAt ?? h.now;
    }
    expect(delays).toEqual([100, 200, 400, 800]);
  });

  it('jitter picks the delay uniformly in [delay * (1 - jitter), delay], decided by the leader', () => {
    const backoff = { type: 'exponential' as const, delay: 1000, jitter: 0.5 };
    expect(backoffDelay(backoff, 2, () => 0)).toBe(1000);
    expect(backoffDelay(backoff, 2, () => 0.999_999)).toBeLessThanOrEqual(2000);
    expect(backoffDelay(backoff, 2, () => 0.999_999)).toBeGreaterThan(1990);
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay({ type: 'fixed', delay: 1000, jitter: 0.3 }, 1, Math.random);
      expect(delay).toBeGreaterThanOrEqual(700);
      expect(delay).toBeLessThanOrEqual(1000);
    }
    // The chosen delay is in the record, so replay does not draw again.
    const h = new Harness(() => 0.25);
    const id = h.add('a', 'x', { attempts: 2, backoff: { type: 'fixed', delay: 1000, jitter: 1 } });
    const [leased] = h.lease('a').jobs;
    const { retryAt } = h.run({ op: 'nack', queue: 'a', id, token: leased?.token ?? 0, failedReason: 'x' });
    expect(retryAt).toBe(START + 250);
    expect(digest(replayed(h.records))).toBe(digest(h.queues));
  });

  it('nack delayMs overrides the backoff; retry:false fails at once; release costs no attempt', () => {
    const h = new Harness();
    const id = h.add('a', 'x', { attempts: 5, backoff: 1000 });
    let [leased] = h.lease('a').jobs;
    expect(
      h.run({ op: 'nack', queue: 'a', id, token: leased?.token ?? 0, failedReason: 'x', delayMs: 7 }).retryAt,
    ).toBe(START + 7);
    h.now += 7;
    h.tick();
    [leased] = h.lease('a').jobs;
    h.run({ op: 'release', queue: 'a', id, token: leased?.token ?? 0 });
    expect(h.state('a', id)).toMatchObject({
      state: 'waiting',
      job: { attemptsMade: 1, attemptsStarted: 2 },
    });
    [leased] = h.lease('a').jobs;
    const result = h.run({
      op: 'nack',
      queue: 'a',
      id,
      token: leased?.token ?? 0,
      failedReason: 'fatal',
      retry: false,
    });
    expect(result).toEqual({ id, state: 'failed', retryAt: null });
    expect(h.eventNames('a')).not.toContain('retries-exhausted');
  });
});

describe('leases', () => {
  it('fences a stale token after expiry and redelivers the job exactly once per expiry', () => {
    const h = new Harness();
    const id = h.add('a', 'x', { attempts: 4 });
    const tokens: number[] = [];
    for (let round = 0; round < 3; round++) {
      const { jobs } = h.lease('a', 10, 1000);
      expect(jobs.map((l) => l.job.id)).toEqual([id]);
      const token = jobs[0]?.token ?? 0;
      tokens.push(token);
      expect(h.lease('a', 10).jobs).toHaveLength(0); // not delivered twice while leased
      h.now += 1000;
      // Expired by time, not yet by tick: already lost, and no state change.
      const before = digest(h.queues);
      expect(codeOf(() => h.run({ op: 'ack', queue: 'a', id, token }))).toBe('AOFQ_ERR_LEASE_LOST');
      expect(digest(h.queues)).toBe(before);
      expect(h.tick()).toEqual(['Q.EXPIRE']);
      expect(h.tick()).toEqual([]);
      expect(codeOf(() => h.run({ op: 'ack', queue: 'a', id, token }))).toBe('AOFQ_ERR_LEASE_LOST');
      expect(codeOf(() => h.run({ op: 'extend', queue: 'a', id, token }))).toBe('AOFQ_ERR_LEASE_LOST');
    }
    expect(new Set(tokens).size).toBe(3);
    const { job } = h.state('a', id);
    expect(job).toMatchObject({ stalledCounter: 3, attemptsMade: 3, attemptsStarted: 3 });
    const [last] = h.lease('a').jobs;
    h.run({ op: 'ack', queue: 'a', id, token: last?.token ?? 0, returnvalue: { ok: true } });
    expect(codeOf(() => h.run({ op: 'ack', queue: 'a', id, token: last?.token ?? 0 }))).toBe(
      'AOFQ_ERR_LEASE_LOST',
    );
    expect(h.state('a', id)).toMatchObject({ state: 'completed', job: { returnvalue: '{"ok":true}' } });
    expect(h.eventNames('a').filter((e) => e === 'completed')).toHaveLength(1);
    expect(h.eventNames('a').filter((e) => e === 'stalled')).toHaveLength(3);
  });

  it('an expiry that exhausts the attempts fails the job', () => {
    const h = new Harness();
    const id = h.add('a', 'x');
    h.lease('a', 1, 500);
    h.now += 500;
    h.tick();
    expect(h.state('a', id)).toMatchObject({ state: 'failed', job: { stalledCounter: 1, attemptsMade: 1 } });
  });

  it('extend moves the deadline; nextDeadline reports the earliest timer', () => {
    const h = new Harness();
    const id = h.add('a', 'x');
    h.add('a', 'later', { delay: 5000 });
    const [leased] = h.lease('a', 1, 1000).jobs;
    expect(h.queues.nextDeadline()).toBe(START + 1000);
    h.now += 900;
    expect(h.run({ op: 'extend', queue: 'a', id, token: leased?.token ?? 0, leaseMs: 2000 }).leaseUntil).toBe(
      START + 2900,
    );
    expect(h.queues.nextDeadline()).toBe(START + 2900);
    h.now = START + 2000;
    expect(h.tick()).toEqual([]);
    h.now = START + 5000;
    expect(h.tick()).toEqual(['Q.EXPIRE', 'Q.DUE']);
    expect(h.queues.nextDeadline()).toBeNull();
  });

  it('a queue obliterated and made again under its name is a new queue (the name lookup remembers no old one)', () => {
    const h = new Harness();
    expect(h.add('a', 'x')).toBe('1');
    expect(h.add('b', 'x')).toBe('1');
    // Every lookup of 'a' just hit the table's one-entry cache (queue-table.ts): it must not outlive the queue.
    h.run({ op: 'obliterate', queue: 'a', force: true });
    expect(codeOf(() => h.run({ op: 'getJobCounts', queue: 'a' }))).toBe('AOFQ_ERR_QUEUE_NOT_FOUND');
    expect(h.add('a', 'x')).toBe('1');
    expect(h.run({ op: 'getJobCounts', queue: 'a' }).waiting).toBe(1);
    expect(h.run({ op: 'getJobCounts', queue: 'b' }).waiting).toBe(1);
    expect(h.queues.listQueues()).toEqual(['a', 'b']);
  });

  it('keeps one deadline per queue over many queues: ticks touch only due queues, obliterate drops its entry', () => {
    const h = new Harness();
    // 300 queues, each with a lease that expires at START + 1000 + i and a delayed job due later.
    for (let i = 0; i < 300; i++) {
      const queue = `q${i}`;
      h.add(queue, 'x');
      h.add(queue, 'later', { delay: 10_000 + i });
      h.lease(queue, 1, 1000 + i);
    }
    h.queues.verifyDeadlines();
    expect(h.queues.nextDeadline()).toBe(START + 1000);
    h.run({ op: 'obliterate', queue: 'q0', force: true });
    expect(h.queues.nextDeadline()).toBe(START + 1001);
    h.now = START + 1010;
    // q1..q10 are due: ten expiries, nothing else.
    expect(h.tick()).toEqual(Array.from({ length: 10 }, () => 'Q.EXPIRE'));
    h.queues.verifyDeadlines();
    expect(h.queues.nextDeadline()).toBe(START + 1011);
    h.now = START + 20_000;
    expect(h.tick().filter((c) => c === 'Q.EXPIRE')).toHaveLength(289);
    h.queues.verifyDeadlines();
    expect(digest(replayed(h.records))).toBe(digest(h.queues));
  });

  it('progress with a token is fenced; without one it is not', () => {
    const h = new Harness();
    const id = h.add('a', 'x');
    const [leased] = h.lease('a').jobs;
    h.run({ op: 'progress', queue: 'a', id, token: leased?.token ?? 0, progress: 50 });
    expect(h.state('a', id).job.progress).toBe(50);
    expect(codeOf(() => h.run({ op: 'progress', queue: 'a', id, token: 999, progress: 60 }))).toBe(
      'AOFQ_ERR_LEASE_LOST',
    );
    h.run({ op: 'progress', queue: 'a', id, progress: { step: 'b' } });
    expect(h.state('a', id).job.progress).toEqual({ step: 'b' });
    expect(h.eventNames('a')).toContain('progress');
  });
});

describe('retention', () => {
  it('keeps the newest N finished jobs (queue retention and removeOnComplete)', () => {
    const h = new Harness();
    h.run({ op: 'setConfig', queue: 'a', config: { retention: { completed: 2, failed: 10 } } });
    const ids = [1, 2, 3, 4, 5].map(() => h.add('a', 'x'));
    for (const leased of h.lease('a', 5).jobs) {
      h.now += 1;
      h.run({ op: 'ack', queue: 'a', id: leased.job.id, token: leased.token });
    }
    const { jobs } = h.run({ op: 'listJobs', queue: 'a', state: 'completed' });
    expect(jobs.map((j) => j.id)).toEqual(ids.slice(3));
    const gone = h.add('a', 'y', { removeOnComplete: true });
    const [leased] = h.lease('a').jobs;
    h.run({ op: 'ack', queue: 'a', id: gone, token: leased?.token ?? 0 });
    expect(codeOf(() => h.state('a', gone))).toBe('AOFQ_ERR_JOB_NOT_FOUND');
  });

  it('a job that its retention keeps not at all finishes as if it had passed through its set', () => {
    // Such a job never enters the completed or failed set (queues.ts, enterFinished), but the
    // events, the counts and the counters in the snapshot are those of a job placed and removed.
    const counters = (h: Harness) => {
      const records = [...h.queues.snapshotRecords(h.now)];
      const state = records.find((record) => String(record[0]) === 'Q.STATE');
      return JSON.parse(String(state?.[2])) as { orderCounter: number };
    };
    for (const [policy, outcome] of [
      [{ removeOnComplete: true }, 'ack'],
      [{ removeOnFail: true }, 'nack'],
    ] as const) {
      const h = new Harness();
      const id = h.add('a', 'x', policy);
      const [leased] = h.lease('a').jobs;
      const before = counters(h).orderCounter;
      const token = leased?.token ?? 0;
      if (outcome === 'ack') h.run({ op: 'ack', queue: 'a', id, token });
      else h.run({ op: 'nack', queue: 'a', id, token, failedReason: 'no' });
      expect(counters(h).orderCounter).toBe(before + 1);
      expect(h.eventNames('a')).toContain(outcome === 'ack' ? 'completed' : 'failed');
      expect(codeOf(() => h.state('a', id))).toBe('AOFQ_ERR_JOB_NOT_FOUND');
      const counts = h.run({ op: 'getJobCounts', queue: 'a' });
      expect([counts.completed, counts.failed, counts.active]).toEqual([0, 0, 0]);
      // The next job is placed and kept as usual.
      const kept = h.add('a', 'y');
      const [next] = h.lease('a').jobs;
      h.run({ op: 'ack', queue: 'a', id: kept, token: next?.token ?? 0 });
      expect(h.run({ op: 'listJobs', queue: 'a', state: 'completed' }).jobs.map((j) => j.id)).toEqual([kept]);
    }
  });

  it('removes finished jobs older than age seconds', () => {
    const h = new Harness();
    const old = h.add('a', 'x', { removeOnFail: { age: 1 } });
    const young = h.add('a', 'x', { removeOnFail: { age: 1 } });
    const [first] = h.lease('a').jobs;
    h.run({ op: 'nack', queue: 'a', id: old, token: first?.token ?? 0, failedReason: 'x' });
    h.now += 1500;
    const [second] = h.lease('a').jobs;
    h.run({ op: 'nack', queue: 'a', id: young, token: second?.token ?? 0, failedReason: 'x' });
    expect(h.run({ op: 'listJobs', queue: 'a', state: 'failed' }).jobs.map((j) => j.id)).toEqual([young]);
  });

  it('is bounded by default: 1,000 completed jobs', () => {
    const h = new Harness();
    for (let i = 0; i < 1005; i++) h.add('a', 'x');
    for (let round = 0; round < 2; round++) {
      for (const leased of h.lease('a', 1000).jobs)
        h.run({ op: 'ack', queue: 'a', id: leased.job.id, token: leased.token });
    }
    expect(h.counts('a').completed).toBe(1000);
    expect(h.run({ op: 'getConfig', queue: 'a' }).config.retention).toEqual({
      completed: 1000,
      failed: 10_000,
    });
  });
});

describe('dead-letter queue', () => {
  it('moves an exhausted job to the DLQ with its history, and redrive brings it back', () => {
    const h = new Harness();
    h.run({ op: 'setConfig', queue: 'work', config: { deadLetterQueue: 'work.dlq', maxAttempts: 2 } });
    const id = h.add('work', 'email', undefined, { to: 'x' });
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [leased] = h.lease('work').jobs;
      const result = h.run({
        op: 'nack',
        queue: 'work',
        id,
        token: leased?.token ?? 0,
        failedReason: `smtp ${attempt}`,
        stacktrace: `at send (${attempt})`,
      });
      expect(result.state).toBe(attempt === 1 ? 'waiting' : 'dead-lettered');
    }
    expect(codeOf(() => h.state('work', id))).toBe('AOFQ_ERR_JOB_NOT_FOUND');
    const { jobs } = h.run({ op: 'listJobs', queue: 'work.dlq', state: 'waiting' });
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({
      name: 'email',
      data: '{"to":"x"}',
      failedReason: 'smtp 2',
      deadLetter: {
        queue: 'work',
        id,
        attemptsMade: 2,
        failedReason: 'smtp 2',
        stacktrace: ['at send (1)', 'at send (2)'],
      },
    });
    expect(h.eventNames('work')).toEqual(expect.arrayContaining(['failed', 'retries-exhausted']));
    expect(h.eventNames('work.dlq')).toEqual(['added', 'waiting']);
    const { moved } = h.run({ op: 'redrive', queue: 'work.dlq' });
    expect(moved).toEqual([{ from: jobs[0]?.id, queue: 'work', id }]);
    expect(h.state('work', id)).toMatchObject({
      state: 'waiting',
      job: { attemptsMade: 0, data: '{"to":"x"}' },
    });
    expect(h.counts('work.dlq').waiting).toBe(0);
    expect(digest(replayed(h.records))).toBe(digest(h.queues));
  });
});

describe('rate limiter and pause', () => {
  it('hands out at most max leases per window and says when it reopens', () => {
    const h = new Harness();
    h.run({ op: 'setConfig', queue: 'a', config: { limiter: { max: 2, duration: 1000 } } });
    for (let i = 0; i < 5; i++) h.add('a', 'x');
    const first = h.lease('a', 5);
    expect(first.jobs).toHaveLength(2);
    expect(first.rateLimitedUntil).toBe(START + 1000);
    h.now += 999;
    expect(h.lease('a', 5).jobs).toHaveLength(0);
    expect(h.queues.nextDeadline()).toBe(START + 1000);
    h.now += 1;
    // The window reopens: the tick says so (the node wakes long polls), and it is no deadline any more.
    const ticked = h.queues.tick({ nowMs: h.now });
    h.records.push(...ticked.records);
    expect(ticked.reopened).toEqual(['a']);
    const next = h.queues.nextDeadline();
    expect(next === null || next > h.now).toBe(true);
    expect(h.queues.tick({ nowMs: h.now }).reopened).toEqual([]);
    expect(h.lease('a', 5).jobs).toHaveLength(2);
    expect(digest(replayed(h.records))).toBe(digest(h.queues));
  });

  it('a paused queue hands out nothing until resumed', () => {
    const h = new Harness();
    h.add('a', 'x');
    h.run({ op: 'pause', queue: 'a' });
    expect(h.lease('a')).toEqual({ jobs: [], rateLimitedUntil: null, paused: true });
    expect(h.counts('a')).toMatchObject({ waiting: 1, paused: true });
    h.run({ op: 'resume', queue: 'a' });
    expect(h.leaseIds('a')).toEqual(['1']);
    expect(h.eventNames('a')).toEqual(expect.arrayContaining(['paused', 'resumed', 'active', 'drained']));
  });
});

describe('reads and admin', () => {
  it('lists jobs page by page with a stable cursor', () => {
    const h = new Harness();
    for (let i = 0; i < 25; i++) h.add('a', `j${i}`);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const result = h.run({ op: 'listJobs', queue: 'a', state: 'waiting', limit: 10, cursor });
      seen.push(...result.jobs.map((j) => j.id));
      if (page === 0) h.run({ op: 'remove', queue: 'a', id: '15' }); // a change on a later page
      if (result.cursor === null) break;
      cursor = result.cursor;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => String(i + 1)).filter((id) => id !== '15'));
    expect(codeOf(() => h.run({ op: 'listJobs', queue: 'a', state: 'waiting', cursor: 'zz' }))).toBe(
      'AOFQ_ERR_QUEUE_INVALID_REQUEST',
    );
  });

  it('drain, promote, clean, retryJobs, remove and obliterate', () => {
    const h = new Harness();
    h.add('a', 'w');
    const delayed = h.add('a', 'd', { delay: 60_000 });
    h.add('a', 'p', { priority: 3 });
    h.run({ op: 'promote', queue: 'a', id: delayed });
    expect(h.state('a', delayed)).toMatchObject({ state: 'waiting', job: { delay: 0 } });
    expect(h.run({ op: 'drain', queue: 'a' }).removed).toBe(3);
    expect(h.counts('a')).toMatchObject({ waiting: 0, prioritized: 0, delayed: 0 });

    const failing = h.add('a', 'f');
    const [leased] = h.lease('a').jobs;
    h.run({ op: 'nack', queue: 'a', id: failing, token: leased?.token ?? 0, failedReason: 'x' });
    expect(h.run({ op: 'retryJobs', queue: 'a' }).ids).toEqual([failing]);
    expect(h.state('a', failing)).toMatchObject({
      state: 'waiting',
      job: { attemptsMade: 0, failedReason: '' },
    });

    h.now += 10_000;
    h.add('a', 'fresh');
    expect(h.run({ op: 'clean', queue: 'a', graceMs: 5000, limit: 100, state: 'waiting' }).ids).toEqual([
      failing,
    ]);
    expect(h.eventNames('a')).toContain('cleaned');

    const [active] = h.lease('a').jobs;
    expect(codeOf(() => h.run({ op: 'remove', queue: 'a', id: active?.job.id ?? '' }))).toBe(
      'AOFQ_ERR_JOB_STATE',
    );
    expect(codeOf(() => h.run({ op: 'obliterate', queue: 'a' }))).toBe('AOFQ_ERR_QUEUE_BUSY');
    expect(h.run({ op: 'obliterate', queue: 'a', force: true }).removed).toBe(1);
    expect(codeOf(() => h.counts('a'))).toBe('AOFQ_ERR_QUEUE_NOT_FOUND');
    expect(digest(replayed(h.records))).toBe(digest(h.queues));
  });

  it('retryJob (BullMQ Job.retry) moves one failed or completed job back, as one record', () => {
    const h = new Harness();
    h.run({ op: 'setConfig', queue: 'a', config: { maxAttempts: 2 } });
    const failing = h.add('a', 'f', { priority: 2 });
    const other = h.add('a', 'o');
    // Two failed attempts: the job fails with its attempts exhausted.
    for (let attempt = 0; attempt < 2; attempt++) {
      h.now += 1;
      const [leased] = h.lease('a', 2).jobs.filter((l) => l.job.id === failing);
      h.run({
        op: 'nack',
        queue: 'a',
        id: failing,
        token: leased?.token ?? 0,
        failedReason: `boom ${attempt}`,
        stacktrace: `at ${attempt}`,
      });
    }
    expect(h.state('a', failing)).toMatchObject({ state: 'failed', job: { attemptsMade: 2 } });
    expect(h.state('a', other).state).toBe('active');

    // Only a failed job by default; a waiting/active one, an unknown one, a bad flag: refused, nothing logged.
    const before = h.records.length;
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'a', id: other }))).toBe('AOFQ_ERR_JOB_STATE');
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'a', id: 'nope' }))).toBe('AOFQ_ERR_JOB_NOT_FOUND');
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'zz', id: failing }))).toBe(
      'AOFQ_ERR_QUEUE_NOT_FOUND',
    );
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'a', id: failing, state: 'completed' }))).toBe(
      'AOFQ_ERR_JOB_STATE',
    );
    expect(
      codeOf(() =>
        h.run({ op: 'retryJob', queue: 'a', id: failing, resetAttemptsMade: 'yes' as unknown as boolean }),
      ),
    ).toBe('AOFQ_ERR_QUEUE_INVALID_REQUEST');
    expect(h.records.length).toBe(before);

    h.events.length = 0;
    expect(h.run({ op: 'retryJob', queue: 'a', id: failing })).toEqual({ id: failing, state: 'prioritized' });
    expect(h.records.length).toBe(before + 1);
    expect(h.records.at(-1)?.[0]?.toString()).toBe('Q.RETRYJOB');
    expect(h.events).toEqual([['a', { event: 'waiting', jobId: failing, prev: 'failed' }]]);
    const retried = h.state('a', failing);
    // As BullMQ: finishedOn, processedOn and failedReason go; attempts are kept unless reset; the stack stays.
    expect(retried.state).toBe('prioritized');
    expect(retried.job).toMatchObject({ attemptsMade: 2, attemptsStarted: 2, failedReason: '' });
    expect(retried.job.finishedOn).toBeUndefined();
    expect(retried.job.processedOn).toBeUndefined();
    expect(JSON.parse(retried.job.stacktrace)).toEqual(['at 0', 'at 1']);
    // With its attempts used up, the next failure fails it at once.
    const [again] = h.lease('a').jobs;
    expect(again?.job.id).toBe(failing);
    expect(
      h.run({ op: 'nack', queue: 'a', id: failing, token: again?.token ?? 0, failedReason: 'still' }).state,
    ).toBe('failed');

    // resetAttemptsMade gives it its attempts again.
    h.run({ op: 'retryJob', queue: 'a', id: failing, resetAttemptsMade: true, resetAttemptsStarted: true });
    expect(h.state('a', failing).job).toMatchObject({ attemptsMade: 0, attemptsStarted: 0 });
    const [third] = h.lease('a').jobs;
    expect(
      h.run({ op: 'nack', queue: 'a', id: failing, token: third?.token ?? 0, failedReason: 'x' }).state,
    ).not.toBe('failed');

    // An active job is not completed either.
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'a', id: other, state: 'completed' }))).toBe(
      'AOFQ_ERR_JOB_STATE',
    );
    expect(digest(replayed(h.records))).toBe(digest(h.queues));
  });

  it('retryJob of a completed job clears its returnvalue; maxJobs bounds it; replay checks the record', () => {
    const h = new Harness();
    h.run({ op: 'setConfig', queue: 'a', config: { maxJobs: 1 } });
    const id = h.add('a', 'c', { lifo: true });
    const [leased] = h.lease('a').jobs;
    h.run({ op: 'ack', queue: 'a', id, token: leased?.token ?? 0, returnvalue: { sent: true } });
    expect(h.state('a', id).job.returnvalue).toBe('{"sent":true}');
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'a', id }))).toBe('AOFQ_ERR_JOB_STATE');
    h.add('a', 'fills the queue');
    expect(codeOf(() => h.run({ op: 'retryJob', queue: 'a', id, state: 'completed' }))).toBe(
      'AOFQ_ERR_QUEUE_FULL',
    );
    h.run({ op: 'setConfig', queue: 'a', config: { maxJobs: 10 } });
    expect(h.run({ op: 'retryJob', queue: 'a', id, state: 'completed' })).toEqual({ id, state: 'waiting' });
    const job = h.state('a', id).job;
    expect(job).toMatchObject({ returnvalue: 'null', attemptsMade: 1 });
    expect(job.finishedOn).toBeUndefined();
    // lifo: it goes to the front of the waiting list.
    expect(h.leaseIds('a')).toEqual([id]);
    expect(digest(replayed(h.records))).toBe(digest(h.queues));

    // A record that does not match the state is refused on replay, with no change.
    const queues = replayed(h.records);
    const snapshot = digest(queues);
    for (const record of [
      ['Q.RETRYJOB', 'a', id, '5', '0', '0'], // the job is active now, not failed
      ['Q.RETRYJOB', 'a', id, '3', '0', '0'], // not a finished state
      ['Q.RETRYJOB', 'a', id, '4', '2', '0'], // flag out of range
      ['Q.RETRYJOB', 'a', 'missing', '4', '0', '0'],
      ['Q.RETRYJOB', 'a', id, '4', '0'],
    ]) {
      expect(
        codeOf(() => queues.replay(record.map((part) => Buffer.from(part)))),
        record.join(' '),
      ).toBe('AOFQ_ERR_QUEUE_RECORD_INVALID');
      expect(digest(queues)).toBe(snapshot);
    }
  });

  it('maxJobs applies backpressure to a whole bulk', () => {
    const h = new Harness();
    h.run({ op: 'setConfig', queue: 'a', config: { maxJobs: 3 } });
    h.add('a', 'x');
    const before = digest(h.queues);
    expect(
      codeOf(() =>
        h.run({
          op: 'add',
          queue: 'a',
          jobs: [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
        }),
      ),
    ).toBe('AOFQ_ERR_QUEUE_FULL');
    expect(digest(h.queues)).toBe(before);
    expect(h.run({ op: 'add', queue: 'a', jobs: [{ name: 'a' }, { name: 'b' }] }).jobs).toHaveLength(2);
  });

  it('durability, owns, config validation', () => {
    const h = new Harness();
    expect(h.queues.durabilityOf('a')).toBe('default');
    h.run({ op: 'setConfig', queue: 'a', config: { durability: 'fsync' } });
    expect(h.queues.durabilityOf('a')).toBe('fsync');
    expect(h.queues.owns('Q.ADD')).toBe(true);
    expect(h.queues.owns('SET')).toBe(false);
    expect(h.queues.isWrite({ op: 'getJob', queue: 'a', id: '1' })).toBe(false);
    expect(h.queues.listQueues()).toEqual(['a']);
    for (const config of [
      { leaseMs: 1 },
      { deadLetterQueue: 'a' },
      { limiter: { max: 0, duration: 1 } },
      { nope: 1 },
    ]) {
      expect(codeOf(() => h.run({ op: 'setConfig', queue: 'a', config: config as never }))).toBe(
        'AOFQ_ERR_QUEUE_INVALID_CONFIG',
      );
    }
  });
});

/** An object that holds itself: JSON.stringify throws on it. */
function cyclic(): Record<string, unknown> {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}

describe('bad input: coded errors and no partial state', () => {
  const cases: Array<[string, QueueRequest, string]> = [
    [
      'oversized data',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', data: 'x'.repeat(1024 * 1024) }] },
      'AOFQ_ERR_JOB_DATA_TOO_LARGE',
    ],
    [
      'unknown option',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { repeat: {} } as never }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'unknown job field',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', extra: 1 } as never] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'priority too high',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { priority: 2_097_153 } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'negative priority',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { priority: -1 } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'negative delay',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { delay: -5 } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'bad backoff',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { backoff: { type: 'linear' } as never } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'jitter above 1',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { backoff: { type: 'fixed', jitter: 2 } } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'integer custom id',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', opts: { jobId: '12' } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'name over the limit',
      { op: 'add', queue: 'a', jobs: [{ name: 'n'.repeat(257) }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'data JSON cannot hold: a bigint',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', data: { n: 1n } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'data JSON cannot hold: a cycle',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', data: cyclic() }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'data that is not a JSON value: a function',
      { op: 'add', queue: 'a', jobs: [{ name: 'x', data: () => 1 }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'bulk whose second job holds a bigint',
      {
        op: 'add',
        queue: 'a',
        jobs: [
          { name: 'ok', data: { n: 1 } },
          { name: 'bad', data: [2n] },
        ],
      },
      'AOFQ_ERR_JOB_INVALID',
    ],
    ['bad queue name', { op: 'add', queue: 'a b', jobs: [{ name: 'x' }] }, 'AOFQ_ERR_QUEUE_INVALID_NAME'],
    [
      'lone surrogate in a name',
      { op: 'add', queue: 'a', jobs: [{ name: 'x\uD800' }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'lone surrogate in a reason',
      { op: 'nack', queue: 'a', id: '1', token: 1, failedReason: '\uDC00' },
      'AOFQ_ERR_QUEUE_INVALID_REQUEST',
    ],
    [
      'queue name too long',
      { op: 'add', queue: 'q'.repeat(129), jobs: [{ name: 'x' }] },
      'AOFQ_ERR_QUEUE_INVALID_NAME',
    ],
    ['empty queue name', { op: 'lease', queue: '' }, 'AOFQ_ERR_QUEUE_INVALID_NAME'],
    [
      'bulk with one bad job',
      { op: 'add', queue: 'a', jobs: [{ name: 'ok' }, { name: 'bad', opts: { delay: -1 } }] },
      'AOFQ_ERR_JOB_INVALID',
    ],
    [
      'too many jobs',
      { op: 'add', queue: 'a', jobs: Array.from({ length: 1001 }, () => ({ name: 'x' })) },
      'AOFQ_ERR_JOB_INVALID',
    ],
    ['lease count', { op: 'lease', queue: 'a', count: 1001 }, 'AOFQ_ERR_LEASE_INVALID'],
    ['lease too short', { op: 'lease', queue: 'a', leaseMs: 5 }, 'AOFQ_ERR_LEASE_INVALID'],
    [
      'negative release delay',
      { op: 'release', queue: 'a', id: '1', token: 1, delayMs: -1 },
      'AOFQ_ERR_QUEUE_INVALID_REQUEST',
    ],
    ['unknown op', { op: 'frobnicate', queue: 'a' } as never, 'AOFQ_ERR_QUEUE_INVALID_REQUEST'],
  ];
  for (const [what, request, code] of cases) {
    it(what, () => {
      const h = new Harness();
      h.add('a', 'existing');
      const [leased] = h.lease('a').jobs;
      expect(leased?.token).toBe(1);
      const before = digest(h.queues);
      const eventsBefore = h.events.length;
      expect(codeOf(() => h.run(request))).toBe(code);
      expect(digest(h.queues)).toBe(before);
      expect(h.events.length).toBe(eventsBefore);
    });
  }
});

describe('event listeners', () => {
  it('a command issued from inside apply (a listener) is refused by an assertion, not applied', () => {
    let queues: Queues;
    let nested: unknown = null;
    queues = new Queues({
      onEvent: (_queue, event) => {
        if (event.event !== 'added') return;
        try {
          queues.execute({ op: 'add', queue: 'other', jobs: [{ name: 'inner' }] }, { nowMs: 1 });
        } catch (err) {
          nested = err;
        }
      },
    });
    queues.execute({ op: 'add', queue: 'q', jobs: [{ name: 'outer' }] }, { nowMs: 1 });
    expect(nested).toBeInstanceOf(AssertionError);
    expect((nested as Error).message).toBe('apply never nests');
    expect(queues.listQueues()).toEqual(['q']);
  });
});

describe('isWrite', () => {
  it('is false for the four reads, which log nothing, and true for every other op', () => {
    const queues = new Queues();
    const ctx = { nowMs: 1_700_000_000_000 };
    queues.execute({ op: 'add', queue: 'q', jobs: [{ name: 'a' }] }, ctx);
    const reads: QueueRequest[] = [
      { op: 'getJob', queue: 'q', id: '1' },
      { op: 'listJobs', queue: 'q', state: 'waiting' },
      { op: 'getJobCounts', queue: 'q' },
      { op: 'getConfig', queue: 'q' },
    ];
    for (const request of reads) {
      expect(queues.isWrite(request)).toBe(false);
      expect(queues.execute(request, ctx).records).toEqual([]);
    }
    const writes = [
      'add',
      'lease',
      'extend',
      'ack',
      'nack',
      'release',
      'progress',
      'pause',
      'resume',
      'drain',
    ].concat(['clean', 'obliterate', 'retryJobs', 'retryJob', 'promote', 'remove', 'redrive', 'setConfig']);
    for (const op of writes) expect(queues.isWrite({ op, queue: 'q' } as unknown as QueueRequest)).toBe(true);
  });
});

describe('hasLoneSurrogate', () => {
  it('agrees with the regex it replaced, /[\\uD800-\\uDFFF]/u, on any UTF-16 text', () => {
    const lone = /[\uD800-\uDFFF]/u;
    for (const text of [
      '',
      'email',
      'é',
      '\uD83D\uDE00',
      '\uD800',
      '\uDC00',
      'a\uD800',
      '\uDC00\uD800',
      '\uD800\uD800\uDC00',
    ])
      expect(hasLoneSurrogate(text)).toBe(lone.test(text));
    // Code units drawn mostly near and inside the surrogate range, so that pairs and lone halves both occur.
    const unit = fc.oneof(
      fc.integer({ min: 0xd800, max: 0xdfff }),
      fc.integer({ min: 0, max: 0x7f }),
      fc.integer({ min: 0, max: 0xffff }),
    );
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 40 }), (units) => {
        const text = String.fromCharCode(...units);
        return hasLoneSurrogate(text) === lone.test(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a lone surrogate in a consumer name and in a custom job id, with a coded error', () => {
    const queues = new Queues();
    const ctx = { nowMs: 1_700_000_000_000 };
    expect(() =>
      queues.execute({ op: 'add', queue: 'q', jobs: [{ name: 'a', opts: { jobId: 'x\uDC00' } }] }, ctx),
    ).toThrow(expect.objectContaining({ code: 'AOFQ_ERR_JOB_INVALID' }));
    queues.execute({ op: 'add', queue: 'q', jobs: [{ name: 'a' }] }, ctx);
    expect(() => queues.execute({ op: 'lease', queue: 'q', consumer: 'w\uD800' }, ctx)).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_LEASE_INVALID' }),
    );
  });
});
