/**
 * The node builds queue events only while someone takes them (a listener, a
 * long poll, NodeOptions.onQueueEvent). These tests hold the switch to its
 * promise over the real AOF: a long poll alone turns events on and is woken
 * by an add, not by its timeout; so is the next one on the same queue; a
 * listener sees the events of its lifetime only, and a node with none still
 * answers every request.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofqNode, type NodeOptions } from '../../src/node/node.js';
import type { QueueEvent } from '../../src/queue/index.js';
import { openTempNode } from '../helpers/node.js';

const openNode = (options: NodeOptions = {}): Promise<AofqNode> => openTempNode('events', options);

/** Adds one job once the long poll is waiting (the poll's first lease found nothing). */
async function addWhenPolling(node: AofqNode, queue: string, name: string): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await node.queue({ op: 'add', queue, jobs: [{ name }] });
}

describe('queue events on demand', () => {
  it('a long poll in a node without listeners is woken by an add, and so is the next one', async () => {
    const node = await openNode();
    await node.queue({ op: 'setConfig', queue: 'q', config: {} });
    for (const name of ['first', 'second']) {
      const started = Date.now();
      const [polled] = await Promise.all([
        node.leaseWait({ op: 'lease', queue: 'q', count: 1 }, 20_000),
        addWhenPolling(node, 'q', name),
      ]);
      expect(polled.jobs.map((lease) => lease.job.name)).toEqual([name]);
      // Woken by the add's event, far before the 20 s timeout.
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });

  it('a listener sees the events of its lifetime only; without one, requests still answer', async () => {
    const node = await openNode();
    await node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'before' }] });
    const seen: QueueEvent[] = [];
    const unlisten = node.onQueueEvent((queue, event) => {
      if (queue === 'q') seen.push(event);
    });
    const { jobs } = await node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'during' }] });
    const id = jobs[0]?.id ?? '';
    expect(seen).toEqual([
      { event: 'added', jobId: id, name: 'during' },
      { event: 'waiting', jobId: id },
    ]);
    unlisten();
    await node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'after' }] });
    expect(seen).toHaveLength(2);
    const leased = await node.queue({ op: 'lease', queue: 'q', count: 3 });
    expect(leased.jobs.map((lease) => lease.job.name)).toEqual(['before', 'during', 'after']);
  });

  it('NodeOptions.onQueueEvent receives live events, not those replayed at open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aofq-events-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const first = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec' });
    await first.queue({ op: 'add', queue: 'q', jobs: [{ name: 'old' }] });
    await first.close();
    const events: string[] = [];
    const node = await AofqNode.open(
      { ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec' },
      { onQueueEvent: (_queue, event) => events.push(event.event) },
    );
    try {
      expect(events).toEqual([]);
      await node.queue({ op: 'lease', queue: 'q', count: 1 });
      expect(events).toEqual(['active', 'drained']);
    } finally {
      await node.close();
    }
  });
});
