/**
 * The hand-written texts of the WebSocket push and ok reply equal
 * JSON.stringify of the objects they stand for, over jobs in every state the
 * queue core makes (custom ids, options, progress, failures with stack
 * traces, dead letters, consumers) with arbitrary names and data.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jobJsonText, jobMessageText, jobsMessageText, okMessageText } from '../../src/http/ws-text.js';
import { type JobJson, type JobState, Queues } from '../../src/queue/index.js';

const STATES: JobState[] = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'];

function jobsOf(queues: Queues, queue: string, nowMs: number): JobJson[] {
  const jobs: JobJson[] = [];
  for (const state of STATES) {
    jobs.push(...queues.execute({ op: 'listJobs', queue, state, limit: 1000 }, { nowMs }).result.jobs);
  }
  return jobs;
}

describe('WebSocket message texts', () => {
  it('equal JSON.stringify for jobs in every state, with arbitrary names, data and reasons', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            name: fc.string({ unit: 'grapheme', maxLength: 20 }),
            data: fc.jsonValue({ maxDepth: 3 }),
            custom: fc.option(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 10 }), {
              nil: undefined,
            }),
            priority: fc.integer({ min: 0, max: 5 }),
            delay: fc.constantFrom(0, 0, 500),
            attempts: fc.integer({ min: 1, max: 3 }),
            reason: fc.string({ unit: 'grapheme', maxLength: 30 }),
            progress: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.dictionary(fc.string(), fc.integer())),
            fate: fc.constantFrom('ack', 'nack', 'progress', 'lease', 'none'),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (drafts) => {
          let nowMs = 1_700_000_000_000;
          const queues = new Queues({ random: () => 0.5 });
          const run = <R extends Parameters<Queues['execute']>[0]>(request: R) =>
            queues.execute(request, { nowMs }).result;
          run({ op: 'setConfig', queue: 'q', config: { deadLetterQueue: 'dlq', maxAttempts: 2 } });
          for (const [i, d] of drafts.entries()) {
            const opts = {
              ...(d.custom !== undefined ? { jobId: `${d.custom}-${i}` } : {}),
              priority: d.priority,
              delay: d.delay,
              attempts: d.attempts,
            };
            run({ op: 'add', queue: 'q', jobs: [{ name: d.name, data: d.data, opts }] });
          }
          nowMs += 1000;
          const leased = run({
            op: 'lease',
            queue: 'q',
            count: drafts.length,
            leaseMs: 60_000,
            consumer: 'w1',
          });
          if (leased.jobs.length > 0) {
            expect(jobsMessageText('q', leased.jobs)).toBe(
              JSON.stringify({
                type: 'jobs',
                queue: 'q',
                jobs: leased.jobs.map((l) => ({ job: l.job, token: l.token, leaseUntil: l.leaseUntil })),
              }),
            );
          }
          for (const [i, lease] of leased.jobs.entries()) {
            const d = drafts[i % drafts.length];
            if (d === undefined) continue;
            // Every push text equals the object's JSON.
            expect(jobMessageText('q', lease)).toBe(
              JSON.stringify({
                type: 'job',
                queue: 'q',
                job: lease.job,
                token: lease.token,
                leaseUntil: lease.leaseUntil,
              }),
            );
            const { id } = lease.job;
            const token = lease.token;
            if (d.fate === 'ack') run({ op: 'ack', queue: 'q', id, token, returnvalue: d.data });
            else if (d.fate === 'nack')
              run({
                op: 'nack',
                queue: 'q',
                id,
                token,
                failedReason: d.reason,
                stacktrace: `at ${d.reason}`,
              });
            else if (d.fate === 'progress')
              run({ op: 'progress', queue: 'q', id, token, progress: d.progress });
          }
          nowMs += 120_000;
          queues.tick({ nowMs });
          for (const queue of ['q', 'dlq']) {
            if (!queues.listQueues().includes(queue)) continue;
            for (const job of jobsOf(queues, queue, nowMs))
              expect(jobJsonText(job)).toBe(JSON.stringify(job));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('writes the ok reply as the spread object would, rid first', () => {
    for (const [rid, result] of [
      [1, {}],
      ['r-1', { id: '42', duplicate: false }],
      [7, { jobs: [{ id: '1', duplicate: true }], note: 'ü "quoted"' }],
      ['x', { type: 'shadow', rid: 'inner' }],
    ] as const) {
      const got = okMessageText(rid, result);
      expect(got).toBe(JSON.stringify({ type: 'ok', rid, ...result }));
    }
  });
});
