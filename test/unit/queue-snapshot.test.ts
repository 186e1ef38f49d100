/**
 * The queues' compact snapshot (format 2: typed job entries with per-chunk
 * name and options tables): a round trip through chunks of any size rebuilds
 * the same state; format-1 chunks (records only, written by earlier versions)
 * still load; damaged chunks are refused with the record error, never another
 * exception.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import { Queues } from '../../src/queue/index.js';
import { encodeRecordChunks, QUEUE_CHUNK_FORMAT_2 } from '../../src/queue/snapshot.js';

const NOW = 1_700_000_000_000;

function digest(queues: Queues): string {
  const hash = createHash('sha256');
  queues.digest(hash);
  return hash.digest('hex');
}

/** A workload that leaves jobs in every state, with custom ids, many names and options, failures and dead letters. */
function workload(seed: number, jobs: number): Queues {
  let s = seed >>> 0;
  const random = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const queues = new Queues({ random });
  let nowMs = NOW;
  const run = <R extends Parameters<Queues['execute']>[0]>(request: R) =>
    queues.execute(request, { nowMs }).result;
  run({ op: 'setConfig', queue: 'main', config: { deadLetterQueue: 'main.dlq', maxAttempts: 2 } });
  for (let i = 0; i < jobs; i++) {
    const queue = random() < 0.7 ? 'main' : `side-${i % 3}`;
    run({
      op: 'add',
      queue,
      jobs: [
        {
          name: `name-${i % 37}-é`,
          data: { i, text: 'x'.repeat(Math.floor(random() * 300)), emoji: '✓🚀' },
          opts: {
            ...(random() < 0.1 ? { jobId: `custom-${i}-ü` } : {}),
            priority: random() < 0.3 ? 1 + (i % 5) : 0,
            delay: random() < 0.2 ? 1000 + i : 0,
            attempts: 1 + (i % 3),
            ...(random() < 0.2 ? { lifo: true } : {}),
          },
        },
      ],
    });
  }
  nowMs += 2000;
  for (const queue of queues.listQueues()) {
    const { jobs: leased } = run({ op: 'lease', queue, count: 200, leaseMs: 60_000, consumer: 'w' });
    for (const [k, lease] of leased.entries()) {
      const { id } = lease.job;
      if (k % 4 === 0) run({ op: 'ack', queue, id, token: lease.token, returnvalue: { ok: k } });
      else if (k % 4 === 1)
        run({ op: 'nack', queue, id, token: lease.token, failedReason: `boom ${k}`, stacktrace: 'at x' });
      else if (k % 4 === 2) run({ op: 'progress', queue, id, token: lease.token, progress: { step: k } });
    }
  }
  return queues;
}

function rebuild(chunks: Iterable<Buffer>): Queues {
  const rebuilt = new Queues();
  for (const chunk of chunks) rebuilt.loadSnapshotChunk(Buffer.from(chunk));
  return rebuilt;
}

describe('queue snapshot, format 2', () => {
  it('rebuilds the same state from chunks of any size', () => {
    const queues = workload(7, 600);
    const counts = queues.execute({ op: 'getJobCounts', queue: 'main' }, { nowMs: NOW }).result;
    // The workload really covers the states.
    expect(counts.completed).toBeGreaterThan(0);
    expect(
      counts.failed + counts.waiting + counts.prioritized + counts.delayed + counts.active,
    ).toBeGreaterThan(0);
    expect(queues.listQueues()).toContain('main.dlq');
    const want = digest(queues);
    for (const maxBytes of [64, 300, 4096, 1 << 20]) {
      const chunks = [...queues.snapshotChunks(NOW, maxBytes)];
      for (const chunk of chunks) expect(chunk[0]).toBe(QUEUE_CHUNK_FORMAT_2);
      if (maxBytes === 64) expect(chunks.length).toBeGreaterThan(100);
      expect(digest(rebuild(chunks))).toBe(want);
    }
  });

  it('still loads format-1 chunks (Q.JOB records) written by earlier versions', () => {
    const queues = workload(8, 200);
    const legacy = [...encodeRecordChunks(queues.snapshotRecords(NOW), 2048)];
    for (const chunk of legacy) expect(chunk[0]).toBe(0);
    expect(digest(rebuild(legacy))).toBe(digest(queues));
  });

  it('refuses damaged chunks with AOFQ_ERR_QUEUE_RECORD_INVALID, never another exception', () => {
    const queues = workload(9, 80);
    const chunks = [...queues.snapshotChunks(NOW, 1 << 20)];
    expect(chunks).toHaveLength(1);
    const original = chunks[0] as Buffer;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.nat({ max: original.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        (at, flip, truncate) => {
          const damaged = truncate ? original.subarray(0, at) : Buffer.from(original);
          if (!truncate) damaged[at] = (damaged[at] as number) ^ flip;
          try {
            rebuild([damaged]);
          } catch (err) {
            if (!isAofqError(err)) throw err;
            refused++;
          }
        },
      ),
      { numRuns: 400 },
    );
    expect(refused).toBeGreaterThan(100);
  });
});
