import { describe, expect, it } from 'vitest';
import type { AofqNode } from '../../src/node/node.js';
import { openTempNode } from '../helpers/node.js';

const openNode = (): Promise<AofqNode> => openTempNode('deadline');

/** Counts the queue timer runs of a node (onDeadline ticks) from now on. */
function countTicks(node: AofqNode): () => number {
  let ticks = 0;
  const tick = node.queues.tick.bind(node.queues);
  node.queues.tick = (ctx) => {
    ticks++;
    return tick(ctx);
  };
  return () => ticks;
}

describe('node deadlines', () => {
  it('a full rate-limit window with waiting jobs and no consumer leaves the timer idle', async () => {
    const node = await openNode();
    await node.queue({ op: 'setConfig', queue: 'lim', config: { limiter: { max: 1, duration: 50 } } });
    await node.queue({ op: 'add', queue: 'lim', jobs: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] });
    const ticks = countTicks(node);
    expect((await node.queue({ op: 'lease', queue: 'lim', count: 3, leaseMs: 60_000 })).jobs).toHaveLength(1);
    // The window reopens at +50 ms; over 400 ms the timer fires for that once, not every millisecond.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(ticks()).toBeGreaterThanOrEqual(1);
    expect(ticks()).toBeLessThanOrEqual(3);
    expect(node.queues.nextDeadline()).toBeGreaterThan(Date.now() + 50_000); // the lease, no more
  });

  it('a long poll on a rate-limited queue is answered when the window reopens', async () => {
    const node = await openNode();
    await node.queue({ op: 'setConfig', queue: 'lim', config: { limiter: { max: 1, duration: 300 } } });
    await node.queue({ op: 'add', queue: 'lim', jobs: [{ name: 'a' }, { name: 'b' }] });
    const first = await node.queue({ op: 'lease', queue: 'lim', count: 1 });
    expect(first.jobs).toHaveLength(1);
    const reopensAt = first.jobs[0]?.job.processedOn ?? 0;
    const started = Date.now();
    const polled = await node.leaseWait({ op: 'lease', queue: 'lim', count: 1 }, 10_000);
    const answeredAt = Date.now();
    expect(polled.jobs.map((lease) => lease.job.name)).toEqual(['b']);
    expect(answeredAt).toBeGreaterThanOrEqual(reopensAt + 300);
    // Woken by the reopening, far before the 10 s timeout.
    expect(answeredAt - started).toBeLessThan(3000);
  });

  it('2,000 idle queues with deadlines: writes and timers keep working, each expiry on time', async () => {
    const node = await openNode();
    for (let i = 0; i < 2000; i++) {
      await node.queue({ op: 'add', queue: `idle-${i}`, jobs: [{ name: 'x', opts: { delay: 3_600_000 } }] });
    }
    await node.queue({ op: 'add', queue: 'busy', jobs: [{ name: 'y' }] });
    const stalled = new Promise<string>((resolve) => {
      node.onQueueEvent((queue, event) => {
        if (queue === 'busy' && event.event === 'stalled') resolve(event.jobId);
      });
    });
    const leasedAt = Date.now();
    const [lease] = (await node.queue({ op: 'lease', queue: 'busy', count: 1, leaseMs: 100 })).jobs;
    expect(lease).toBeDefined();
    // The expiry is logged by the node's own timer: a stalled attempt, the only one by default (attempts 1).
    expect(await stalled).toBe(lease?.job.id);
    expect(Date.now() - leasedAt).toBeGreaterThanOrEqual(100);
    const job = await node.queue({ op: 'getJob', queue: 'busy', id: lease?.job.id ?? '' });
    expect(job.state).toBe('failed');
    expect(job.job).toMatchObject({ stalledCounter: 1, attemptsMade: 1 });
    node.queues.verifyDeadlines();
  });
});
