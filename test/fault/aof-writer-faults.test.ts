/**
 * The writer under disk faults injected through FaultyFs: ENOSPC in the middle
 * of a batch, EIO on fsync (with the dirty pages dropped, as Linux may do),
 * short writes, a failing ftruncate, close while failing, and a random mix.
 * Each test checks: writes refused while failing (AOFQ_ERR_AOF_WRITE_FAILED,
 * aof_last_write_status:err), recovery by itself once the fault is cleared,
 * nothing acknowledged lost, no half batch on disk (loadAof reads exactly the
 * records, redis-check-aof exits 0).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AofConfig } from '../../src/aof/config.js';
import { AofEngine } from '../../src/aof/engine.js';
import { realFs } from '../../src/aof/fs.js';
import { loadAof } from '../../src/aof/loader.js';
import { isAofqError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/util/logger.js';
import { CollectingSink, makeTempDir, removeDir, testConfig } from '../helpers/aof-fixtures.js';
import { FaultyFs, redisCheckAof, turns, waitFor } from './faulty-fs.js';

const TIMING = { writeRetryMs: 20, everysecIntervalMs: 20, writeErrorLogMs: 0 };
// Arena chunks of 512 bytes: a few records each, so that batches written again after an fsync
// error lie in chunks that were switched away from, and reused once released (writer.ts, recycle()).
const SMALL_CHUNKS = { ...TIMING, arenaChunkBytes: 512, arenaSpareTrimMs: 50 };

let root: string;
let engines: AofEngine[] = [];

beforeEach(async () => {
  root = await makeTempDir('aofq-fault-');
  engines = [];
});

afterEach(async () => {
  for (const e of engines) await e.close().catch(() => undefined);
  await removeDir(root);
});

async function open(
  fs: FaultyFs,
  overrides: Partial<AofConfig> = {},
  timing: typeof TIMING = TIMING,
): Promise<AofEngine> {
  const engine = await AofEngine.open(
    testConfig(root, overrides),
    { fs, logger: silentLogger, timing },
    new CollectingSink(),
  );
  engines.push(engine);
  return engine;
}

const incr = (): string => path.join(root, 'appendonlydir', 'appendonly.aof.1.incr.aof');

function appendCode(engine: AofEngine): string | undefined {
  try {
    engine.append(['SET', 'refused', 'x']);
  } catch (err) {
    return isAofqError(err) ? err.code : String(err);
  }
  return undefined;
}

/** Load the directory as a restart would (no truncation allowed: it must be clean). */
async function loadClean(): Promise<CollectingSink> {
  const sink = new CollectingSink();
  const result = await loadAof(testConfig(root, { aofLoadTruncated: false }), realFs, sink, silentLogger);
  expect(result.truncated).toBeNull();
  return sink;
}

/** Every acknowledged record is present with its content; LSNs run 1..n without gaps. */
function checkLog(sink: CollectingSink, acknowledged: Map<number, string>): void {
  expect(sink.lsns()).toEqual(Array.from({ length: sink.records.length }, (_, i) => i + 1));
  for (const [lsn, value] of acknowledged) {
    expect(sink.records[lsn - 1]?.argv.join(' ')).toBe(value);
  }
}

describe('write faults', () => {
  it('ENOSPC in the middle of a batch: no half batch, writes refused, recovery by itself', async () => {
    const fs = new FaultyFs();
    const engine = await open(fs, { appendfsync: 'always' });
    const acked = new Map<number, string>();
    for (let i = 0; i < 10; i++) {
      const lsn = engine.append(['SET', `a${i}`, 'v']);
      await engine.waitDurable(lsn);
      acked.set(lsn, `SET a${i} v`);
    }
    const sizeBefore = (await fsp.stat(incr())).size;
    fs.spaceLeft = 60; // the next batch is longer: a short write, then ENOSPC
    const pending: Array<Promise<void>> = [];
    const values: Array<[number, string]> = [];
    for (let i = 0; i < 20; i++) {
      const lsn = engine.append(['SET', `b${i}`, 'x'.repeat(20)]);
      values.push([lsn, `SET b${i} ${'x'.repeat(20)}`]);
      pending.push(engine.waitDurable(lsn).then(() => void acked.set(lsn, values[i]?.[1] as string)));
    }
    await waitFor(() => !engine.writable, 'the engine to refuse writes');
    expect(fs.shortWrites).toBeGreaterThan(0);
    expect(engine.info().aof_last_write_status).toBe('err');
    expect(engine.lastWriteError).toMatch(/^ENOSPC/);
    expect(appendCode(engine)).toBe('AOFQ_ERR_AOF_WRITE_FAILED');
    // The half batch was cut off: the file ends at the last complete batch.
    expect((await fsp.stat(incr())).size).toBe(sizeBefore);
    expect(redisCheckAof(incr()).status).toBe(0);
    expect(acked.size).toBe(10);
    await turns(5);
    expect(acked.size).toBe(10); // still waiting, not lost, not acknowledged

    fs.spaceLeft = null;
    await Promise.all(pending);
    expect(engine.writable).toBe(true);
    expect(engine.info().aof_last_write_status).toBe('ok');
    expect(acked.size).toBe(30);
    const lsn = engine.append(['SET', 'after', 'ok']);
    await engine.waitDurable(lsn);
    acked.set(lsn, 'SET after ok');
    await engine.close();
    checkLog(await loadClean(), acked);
    expect(redisCheckAof(incr()).status).toBe(0);
    expect(redisCheckAof(path.join(root, 'appendonlydir', 'appendonly.aof.manifest')).status).toBe(0);
  });

  it('completes short writes', async () => {
    const fs = new FaultyFs();
    fs.maxWriteBytes = 7;
    const engine = await open(fs, { appendfsync: 'everysec' });
    const acked = new Map<number, string>();
    for (let round = 0; round < 5; round++) {
      const lsns: number[] = [];
      for (let i = 0; i < 10; i++) {
        const lsn = engine.append(['SET', `k${round}-${i}`, 'value'.repeat(i)]);
        acked.set(lsn, `SET k${round}-${i} ${'value'.repeat(i)}`);
        lsns.push(lsn);
      }
      await engine.waitWritten(lsns.at(-1) as number);
    }
    expect(fs.shortWrites).toBeGreaterThan(50);
    expect(engine.info().aof_last_write_status).toBe('ok');
    await engine.close();
    checkLog(await loadClean(), acked);
    expect(redisCheckAof(incr()).status).toBe(0);
  });

  it('retries the cut when ftruncate fails too, before writing again', async () => {
    const fs = new FaultyFs();
    const engine = await open(fs, { appendfsync: 'always' });
    const acked = new Map<number, string>();
    const first = engine.append(['SET', 'a', '1']);
    await engine.waitDurable(first);
    acked.set(first, 'SET a 1');
    const sizeBefore = (await fsp.stat(incr())).size;
    fs.spaceLeft = 30;
    fs.truncateError = 'EIO';
    const lsn = engine.append(['SET', 'b', 'y'.repeat(100)]);
    const durable = engine.waitDurable(lsn);
    await waitFor(() => !engine.writable, 'the failure');
    // A partial batch is on disk for now: the writer knows and must cut it before anything else.
    await waitFor(() => fs.truncates >= 2, 'a retried ftruncate');
    expect((await fsp.stat(incr())).size).toBeGreaterThan(sizeBefore);
    fs.truncateError = null;
    fs.spaceLeft = null;
    await durable;
    acked.set(lsn, `SET b ${'y'.repeat(100)}`);
    await engine.close();
    checkLog(await loadClean(), acked);
    expect(redisCheckAof(incr()).status).toBe(0);
  });
});

describe('fsync faults', () => {
  for (const [policy, chunks] of [
    ['always', 'default'],
    ['everysec', 'default'],
    ['everysec', 'small'],
  ] as const) {
    it(`EIO on fdatasync with dropped pages (${policy}, ${chunks} arena chunks): rewrites what was not durable`, async () => {
      const fs = new FaultyFs();
      fs.dropPagesOnSyncError = true;
      const engine = await open(fs, { appendfsync: policy }, chunks === 'small' ? SMALL_CHUNKS : TIMING);
      const acked = new Map<number, string>();
      for (let i = 0; i < 5; i++) {
        const lsn = engine.append(['SET', `a${i}`, 'v']);
        await engine.waitDurable(lsn);
        acked.set(lsn, `SET a${i} v`);
      }
      const durableSize = (await fsp.stat(incr())).size;
      fs.datasyncError = 'EIO';
      const pending: Array<Promise<void>> = [];
      for (let i = 0; i < 10; i++) {
        const lsn = engine.append(['SET', `b${i}`, 'w']);
        pending.push(engine.waitDurable(lsn).then(() => void acked.set(lsn, `SET b${i} w`)));
      }
      await waitFor(() => !engine.writable, 'the fsync failure');
      expect(engine.info().aof_last_write_status).toBe('err');
      expect(appendCode(engine)).toBe('AOFQ_ERR_AOF_WRITE_FAILED');
      // The injected fault zeroed the unsynced bytes, as lost pages would leave them.
      const bytes = await fsp.readFile(incr());
      expect(bytes.length).toBeGreaterThan(durableSize);
      expect(bytes.subarray(durableSize).every((b) => b === 0)).toBe(true);
      expect(acked.size).toBe(5);

      fs.datasyncError = null;
      await Promise.all(pending);
      expect(engine.writable).toBe(true);
      expect(engine.fsyncedLsn).toBe(15);
      await engine.close();
      checkLog(await loadClean(), acked);
      expect(acked.size).toBe(15);
      expect(redisCheckAof(incr()).status).toBe(0);
    });
  }

  it('everysec: a background fsync that fails after a postponed write went through is never trusted', async () => {
    const fs = new FaultyFs();
    fs.dropPagesOnSyncError = true;
    const engine = await AofEngine.open(
      testConfig(root, { appendfsync: 'everysec' }),
      { fs, logger: silentLogger, timing: { ...TIMING, maxFsyncPostponeMs: 20, writeRetryMs: 300 } },
      new CollectingSink(),
    );
    engines.push(engine);
    const syncGate = fs.holdDatasync();
    const first = engine.append(['SET', 'r1', 'a']);
    await engine.waitWritten(first);
    await syncGate.entered; // the background fsync covers r1
    const second = engine.append(['SET', 'r2', 'b']);
    const secondDurable = engine.waitDurable(second);
    await engine.waitWritten(second); // postponed 20 ms behind the fsync, then written anyway
    expect(engine.info().aof_delayed_fsync).toBe(1);
    fs.datasyncError = 'EIO';
    fs.datasyncErrorsLeft = 1; // only this fsync fails: the next one would succeed
    syncGate.release(); // the fsync fails and the pages of r1 and r2 are "lost"
    await waitFor(() => !engine.writable, 'the fsync failure');
    await turns(5);
    // The disk works again, yet nothing is trusted before r1 and r2 are written again.
    expect(engine.writable).toBe(false);
    expect(engine.fsyncedLsn).toBe(0);
    await secondDurable;
    expect(engine.fsyncedLsn).toBe(2);
    await engine.close();
    const sink = await loadClean();
    expect(sink.commands()).toEqual(['SET r1 a', 'SET r2 b']);
    expect(redisCheckAof(incr()).status).toBe(0);
  });

  it('rejects waiters and close when the disk never recovers, leaving no half batch', async () => {
    const fs = new FaultyFs();
    const engine = await open(fs, { appendfsync: 'always' });
    await engine.waitDurable(engine.append(['SET', 'a', '1']));
    fs.spaceLeft = 25;
    const lsn = engine.append(['SET', 'b', 'z'.repeat(80)]);
    const wait = engine.waitDurable(lsn);
    await waitFor(() => !engine.writable, 'the failure');
    await expect(engine.close()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_WRITE_FAILED' });
    await expect(wait).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_WRITE_FAILED' });
    expect(appendCode(engine)).toBe('AOFQ_ERR_AOF_CLOSED');
    const sink = await loadClean();
    expect(sink.commands()).toEqual(['SET a 1']);
    expect(redisCheckAof(incr()).status).toBe(0);
  });
});

describe('rotation under faults', () => {
  it('rejects a rotation whose flush fails, recovers, then rotates', async () => {
    const fs = new FaultyFs();
    fs.dropPagesOnSyncError = true;
    const engine = await open(fs, { appendfsync: 'everysec' });
    const acked = new Map<number, string>();
    const first = engine.append(['SET', 'a', '1']);
    await engine.waitDurable(first);
    acked.set(first, 'SET a 1');
    const second = engine.append(['SET', 'b', '2']);
    await engine.waitWritten(second);
    fs.datasyncError = 'EIO';
    await expect(engine.rotate()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_WRITE_FAILED' });
    expect(engine.writable).toBe(false);
    await expect(engine.rotate()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_WRITE_FAILED' });
    fs.datasyncError = null;
    await engine.waitDurable(second);
    acked.set(second, 'SET b 2');
    await engine.rotate();
    expect(engine.currentFileName).toBe('appendonly.aof.2.incr.aof');
    const third = engine.append(['SET', 'c', '3']);
    await engine.waitDurable(third);
    acked.set(third, 'SET c 3');
    await engine.close();
    checkLog(await loadClean(), acked);
    expect(redisCheckAof(path.join(root, 'appendonlydir', 'appendonly.aof.manifest')).status).toBe(0);
  });
});

describe('random faults', () => {
  for (const [policy, chunks] of [
    ['always', 'default'],
    ['everysec', 'default'],
    ['everysec', 'small'],
  ] as const) {
    it(`never loses an acknowledged record across a random mix of faults (${policy}, ${chunks} arena chunks)`, async () => {
      let seed = policy === 'always' ? 12345 : chunks === 'small' ? 4242 : 777;
      const random = (): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const fs = new FaultyFs();
      fs.dropPagesOnSyncError = true;
      const engine = await open(fs, { appendfsync: policy }, chunks === 'small' ? SMALL_CHUNKS : TIMING);
      const acked = new Map<number, string>();
      const deadline = Date.now() + 8000;
      let refused = 0;
      let chaosDone = false;
      const writers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 5000 && !chaosDone && Date.now() < deadline; i++) {
          if (!engine.writable) {
            refused++;
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          const value = `SET w${w} ${i}`;
          const lsn = engine.append(['SET', `w${w}`, String(i)]);
          await engine.waitDurable(lsn);
          acked.set(lsn, value);
        }
      });
      const chaos = (async () => {
        for (let step = 0; step < 30 && Date.now() < deadline; step++) {
          const r = random();
          if (r < 0.3) fs.spaceLeft = Math.floor(random() * 200);
          else if (r < 0.5) fs.datasyncError = 'EIO';
          else if (r < 0.6) fs.maxWriteBytes = 1 + Math.floor(random() * 50);
          await new Promise((res) => setTimeout(res, 5 + random() * 20));
          if (!engine.writable) {
            refused++;
            expect(appendCode(engine)).toBe('AOFQ_ERR_AOF_WRITE_FAILED');
            expect(engine.info().aof_last_write_status).toBe('err');
          }
          fs.spaceLeft = null;
          fs.datasyncError = null;
          fs.maxWriteBytes = null;
          await new Promise((res) => setTimeout(res, 5 + random() * 30));
        }
        chaosDone = true;
      })();
      await Promise.all([chaos, ...writers]);
      expect(fs.failedWrites + fs.failedDatasyncs).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
      await engine.close();
      const sink = await loadClean();
      checkLog(sink, acked);
      expect(acked.size).toBeGreaterThan(50);
      expect(redisCheckAof(incr()).status).toBe(0);
    });
  }
});
