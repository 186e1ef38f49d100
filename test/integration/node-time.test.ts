import { setImmediate as turn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { AofqNode, NodeOptions } from '../../src/node/node.js';
import { ManualClock } from '../../src/util/clock.js';
import { openTempNode } from '../helpers/node.js';

const openNode = (options: NodeOptions = {}): Promise<AofqNode> => openTempNode('time', options);

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
