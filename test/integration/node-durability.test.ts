/**
 * What a reply waits for, per queue durability (README "What an
 * acknowledgement promises"). A file layer whose fdatasync the test holds
 * open shows the order of events without any sleep: under appendfsync
 * everysec, a `default` queue's enqueue is answered once written while the
 * fsync is still held, and an `fsync` queue's enqueue is answered only after
 * the held fsync completes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofqNode } from '../../src/node/node.js';
import { GatedFs } from '../helpers/resp-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openNode(appendfsync: 'everysec' | 'always' | 'no') {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-dur-'));
  const fs = new GatedFs();
  const node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync }, { fs });
  cleanups.push(async () => {
    fs.release();
    await node.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { node, fs };
}

/** Resolves once `predicate` holds, checking after each event-loop turn (bounded). */
async function until(predicate: () => boolean, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns && !predicate(); i++) await new Promise((r) => setImmediate(r));
  expect(predicate()).toBe(true);
}

describe('node durability waits', () => {
  it('an fsync queue answers only after the fdatasync; a default queue under everysec does not wait for it', async () => {
    const { node, fs } = await openNode('everysec');
    await node.queue({ op: 'setConfig', queue: 'critical', config: { durability: 'fsync' } });
    await node.queue({ op: 'setConfig', queue: 'fast', config: { durability: 'default' } });

    fs.hold();
    // A default queue's reply needs the write, not an fdatasync: it arrives
    // although every fdatasync is held.
    const fast = await node.queue({ op: 'add', queue: 'fast', jobs: [{ name: 'n', data: 2 }] });
    expect(fast.jobs).toHaveLength(1);
    expect(node.aof.writtenLsn).toBe(node.aof.lastLsn);

    // An fsync queue's reply waits for the fdatasync it asks for.
    let criticalDone = false;
    const critical = node
      .queue({ op: 'add', queue: 'critical', jobs: [{ name: 'n', data: 1 }] })
      .then((r) => {
        criticalDone = true;
        return r;
      });
    await until(() => fs.waiting > 0);
    expect(criticalDone).toBe(false);
    expect(node.aof.fsyncedLsn).toBeLessThan(node.aof.lastLsn);

    fs.release();
    const result = await critical;
    expect(result.jobs[0]?.duplicate).toBe(false);
    expect(node.aof.fsyncedLsn).toBe(node.aof.lastLsn);
  });

  it('under appendfsync always even a default queue waits for the fdatasync', async () => {
    const { node, fs } = await openNode('always');
    fs.hold();
    let done = false;
    const add = node.queue({ op: 'add', queue: 'q', jobs: [{ name: 'n' }] }).then(() => {
      done = true;
    });
    await until(() => fs.waiting > 0);
    expect(done).toBe(false);
    fs.release();
    await add;
    expect(done).toBe(true);
  });

  it('a key-value write is answered only once written, and under always once fsynced', async () => {
    const { node, fs } = await openNode('always');
    fs.hold();
    let done = false;
    const set = node.command([Buffer.from('SET'), Buffer.from('k'), Buffer.from('v')]).then(() => {
      done = true;
    });
    await until(() => fs.waiting > 0);
    expect(done).toBe(false);
    fs.release();
    await set;
    expect(await node.command([Buffer.from('GET'), Buffer.from('k')])).toEqual(Buffer.from('v'));
  });
});
