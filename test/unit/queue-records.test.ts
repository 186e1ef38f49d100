// Records as the AOF holds them: command names, replay of malformed records
// (an AofqError and no state change, never a TypeError), and byte-level fuzz
// of valid records.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AofqError, isAofqError } from '../../src/errors/index.js';
import { COMMANDS, Queues, recordToBytes } from '../../src/queue/index.js';

const NOW = 1_700_000_000_000;

function digest(queues: Queues): string {
  const hash = createHash('sha256');
  queues.digest(hash);
  return hash.digest('hex');
}

function rec(...parts: string[]): Buffer[] {
  return parts.map((part) => Buffer.from(part));
}

/** A small workload's records, covering most commands. */
function workload(): Array<Array<Buffer | string | number>> {
  const queues = new Queues({ random: () => 0.5 });
  const records: Array<Array<Buffer | string | number>> = [];
  let nowMs = NOW;
  const run = (request: Parameters<Queues['execute']>[0]) => {
    const out = queues.execute(request, { nowMs });
    records.push(...out.records);
    return out.result;
  };
  run({
    op: 'setConfig',
    queue: 'a',
    config: { deadLetterQueue: 'dlq', maxAttempts: 2, limiter: { max: 50, duration: 10 } },
  });
  run({
    op: 'add',
    queue: 'a',
    jobs: [
      { name: 'x', data: { n: 1 }, opts: { priority: 2 } },
      { name: 'y', data: [1, 2], opts: { jobId: 'custom', lifo: true } },
      {
        name: 'z',
        data: 'hi',
        opts: { delay: 100, backoff: { type: 'exponential', delay: 10, jitter: 0.5 } },
      },
      { name: 'w', data: null, opts: { attempts: 2 } },
    ],
  });
  const leased = run({ op: 'lease', queue: 'a', count: 3, leaseMs: 1000, consumer: 'worker-1' }) as {
    jobs: Array<{ job: { id: string }; token: number }>;
  };
  const [one, two, three] = leased.jobs;
  run({ op: 'extend', queue: 'a', id: one?.job.id ?? '', token: one?.token ?? 0, leaseMs: 2000 });
  run({ op: 'progress', queue: 'a', id: one?.job.id ?? '', token: one?.token ?? 0, progress: { p: 1 } });
  run({ op: 'ack', queue: 'a', id: one?.job.id ?? '', token: one?.token ?? 0, returnvalue: 'done' });
  run({
    op: 'nack',
    queue: 'a',
    id: two?.job.id ?? '',
    token: two?.token ?? 0,
    failedReason: 'e',
    stacktrace: 's',
  });
  run({ op: 'release', queue: 'a', id: three?.job.id ?? '', token: three?.token ?? 0, delayMs: 5 });
  nowMs += 5000;
  records.push(...queues.tick({ nowMs }).records);
  run({ op: 'lease', queue: 'a', count: 10, leaseMs: 100 });
  nowMs += 200;
  records.push(...queues.tick({ nowMs }).records);
  run({ op: 'pause', queue: 'a' });
  run({ op: 'resume', queue: 'a' });
  run({ op: 'redrive', queue: 'dlq' });
  run({ op: 'add', queue: 'b', jobs: [{ name: 'q', opts: { delay: 50 } }, { name: 'r' }] });
  run({ op: 'promote', queue: 'b' });
  run({ op: 'remove', queue: 'b', id: '1' });
  run({ op: 'clean', queue: 'b', graceMs: 0, limit: 10, state: 'waiting' });
  run({ op: 'retryJobs', queue: 'a' });
  run({ op: 'retryJob', queue: 'a', id: one?.job.id ?? '', state: 'completed', resetAttemptsMade: true });
  run({ op: 'drain', queue: 'b' });
  run({ op: 'obliterate', queue: 'b' });
  return records;
}

describe('record names', () => {
  it('are prefixed so they never collide with Redis commands', () => {
    for (const name of COMMANDS) expect(name).toMatch(/^Q\.[A-Z]+$/);
    const names = new Set(workload().map((record) => record[0]?.toString()));
    expect(names.size).toBeGreaterThanOrEqual(15);
    for (const name of ['Q.EXPIRE', 'Q.REDRIVE', 'Q.DUE', 'Q.NACK', 'Q.RELEASE', 'Q.RETRYJOB'])
      expect(names).toContain(name);
  });
});

describe('malformed records on replay', () => {
  const malformed: Array<[string, Buffer[]]> = [
    ['empty record', []],
    ['unknown command', rec('Q.FROB', 'a')],
    ['redis command', rec('SET', 'a', 'b')],
    ['missing arguments', rec('Q.ADD', 'a')],
    ['bad queue name', rec('Q.PAUSE', 'a b')],
    ['bad queue name in an add', rec('Q.ADD', 'a b', '1', '1', 'n', '{}', '{}', '1')],
    ['bad queue name in an ack', rec('Q.ACK', 'a b', '1', '1', '1')],
    ['ack in a missing queue', rec('Q.ACK', 'zz', '1', '1', '1')],
    ['extra argument', rec('Q.PAUSE', 'a', 'b')],
    ['not an integer', rec('Q.ADD', 'a', '1x', '1', 'n', '{}', '{}', '1')],
    ['negative integer', rec('Q.ADD', 'a', '1', '1', 'n', '{}', '{}', '-1')],
    ['bad opts JSON', rec('Q.ADD', 'a', '1', '1', 'n', '{', '{}', '1')],
    ['unknown option', rec('Q.ADD', 'a', '1', '1', 'n', '{"repeat":1}', '{}', '1')],
    ['non-canonical opts', rec('Q.ADD', 'a', '1', '1', 'n', '{ }', '{}', '1')],
    ['bad data JSON', rec('Q.ADD', 'a', '1', '1', 'n', '{}', '{x', '1')],
    ['second job bad', rec('Q.ADD', 'a', '2', '2', 'n', '{}', '{}', '1', '1', 'n', '{}', '{}', '1')],
    ['duplicate id', rec('Q.ADD', 'a', '2', 'k', 'n', '{}', '{}', '1', 'k', 'n', '{}', '{}', '1')],
    ['ack of a missing job', rec('Q.ACK', 'a', '77', '1', '1', 'null')],
    ['ack with a wrong token', rec('Q.ACK', 'a', '1', '99', '1', 'null')],
    ['lease beyond the ready jobs', rec('Q.LEASE', 'a', '1', '1000', '1', '5', '')],
    ['lease with a token out of sequence', rec('Q.LEASE', 'a', '1', '1000', '9', '1', '')],
    ['config not JSON', rec('Q.CONFIG', 'a', 'nope')],
    ['config out of range', rec('Q.CONFIG', 'a', '{"leaseMs":1}')],
    ['state of a missing queue', rec('Q.STATE', 'zz', '{}')],
    ['job fields malformed', rec('Q.JOB', 'a', 'j', 'n', '{}', '{}', '[1,2]')],
    ['due without due jobs', rec('Q.DUE', 'a', '1', '1')],
  ];
  for (const [what, record] of malformed) {
    it(`${what}: AOFQ_ERR_QUEUE_RECORD_INVALID, state unchanged`, () => {
      const queues = new Queues();
      queues.replay(rec('Q.ADD', 'a', '1', '1', 'n', '{}', '{"k":1}', '5'));
      const before = digest(queues);
      let error: unknown;
      try {
        queues.replay(recordToBytes(record));
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(AofqError);
      expect((error as AofqError).code).toBe('AOFQ_ERR_QUEUE_RECORD_INVALID');
      expect(digest(queues)).toBe(before);
    });
  }

  it('non-buffer parts are rejected', () => {
    const queues = new Queues();
    expect(() => queues.replay(['Q.PAUSE', 'a'] as unknown as Buffer[])).toThrow(AofqError);
  });

  it('byte-level corruption of valid records throws AofqError or applies, never anything else', () => {
    const records = workload().map(recordToBytes);
    const reference = new Queues();
    for (const record of records) reference.replay(record);
    let seed = Number(process.env.AOFQ_FUZZ_SEED ?? 12345);
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let rejected = 0;
    for (let trial = 0; trial < 600; trial++) {
      const queues = new Queues();
      const target = Math.floor(random() * records.length);
      for (let i = 0; i < records.length; i++) {
        const original = records[i] as Buffer[];
        let record = original;
        if (i === target) {
          record = original.map((part) => Buffer.from(part));
          const partIndex = Math.floor(random() * record.length);
          const part = record[partIndex] as Buffer;
          const mode = Math.floor(random() * 3);
          if (mode === 0 && part.length > 0)
            part[Math.floor(random() * part.length)] = Math.floor(random() * 256);
          else if (mode === 1) record = record.slice(0, Math.max(0, record.length - 1));
          else record = [...record, Buffer.from('junk')];
        }
        const before = i >= target ? digest(queues) : '';
        try {
          queues.replay(recordToBytes(record));
        } catch (err) {
          if (!isAofqError(err)) throw err;
          expect(digest(queues)).toBe(before); // a rejected record changes nothing
          rejected++;
          break;
        }
      }
    }
    expect(rejected).toBeGreaterThan(50);
  });
});

describe('replay', () => {
  it('replaying every record, or the snapshot records, rebuilds an equal digest', () => {
    const records = workload();
    const leader = new Queues({ random: () => 0.5 });
    for (const record of records) leader.replay(recordToBytes(record));
    const snapshot = [...leader.snapshotRecords(NOW)];
    const rebuilt = new Queues();
    for (const record of snapshot) rebuilt.replay(recordToBytes(record));
    expect(digest(rebuilt)).toBe(digest(leader));
    const twice = new Queues();
    for (const record of rebuilt.snapshotRecords(NOW)) twice.replay(recordToBytes(record));
    expect(digest(twice)).toBe(digest(leader));
  });
});
