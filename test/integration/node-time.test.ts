/**
 * The leader's time over the real AOF: with the system clock the node reads
 * the time once per burst of work (one run of synchronous code and its
 * microtasks) and every command of the burst gets that millisecond, as Redis
 * caches its time per event-loop iteration; the next burst reads the clock
 * again. An injected clock is read for every command.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofqNode, type NodeOptions } from '../../src/node/node.js';
import { ManualClock } from '../../src/util/clock.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function openNode(options: NodeOptions = {}): Promise<AofqNode> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-time-'));
  const node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec' }, options);
  cleanups.push(async () => {
    await node.close();
    await rm(dir, { recursive: true, force: true });
  });
  return node;
}

/** Spins until the wall clock has moved on by `ms` (the point is a burst longer than a millisecond). */
function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: no turn of the event loop may pass
  }
}

async function timestampOf(node: AofqNode, id: string): Promise<number> {
  const { job } = await node.queue({ op: 'getJob', queue: 'q', id });
  if (job === null) throw new Error(`job ${id} not found`);
  return job.timestamp;
}

describe('the leader time', () => {
  it('is read once per burst with the system clock, and again in the next burst', async () => {
    const node = await openNode();
    const first = node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'a' }] });
    spin(3);
    // Same burst, 3 ms later by the wall clock: the same millisecond.
    const second = node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'b' }] });
    const [a, b] = await Promise.all([first, second]);
    const t1 = await timestampOf(node, a.jobs[0]?.id ?? '');
    const t2 = await timestampOf(node, b.jobs[0]?.id ?? '');
    expect(t2).toBe(t1);
    spin(3);
    await turn();
    const c = await node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'c' }] });
    const t3 = await timestampOf(node, c.jobs[0]?.id ?? '');
    expect(t3).toBeGreaterThanOrEqual(t1 + 3);
    expect(t3).toBeLessThanOrEqual(Date.now());
  });

  it('is read for every command from an injected clock', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const node = await openNode({ clock });
    const first = node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'a' }] });
    clock.advance(5000);
    const second = node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'b' }] });
    const [a, b] = await Promise.all([first, second]);
    expect(await timestampOf(node, a.jobs[0]?.id ?? '')).toBe(1_700_000_000_000);
    expect(await timestampOf(node, b.jobs[0]?.id ?? '')).toBe(1_700_000_005_000);
  });
});
