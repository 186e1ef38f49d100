import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AofConfig } from '../../src/aof/config.js';
import { AofEngine } from '../../src/aof/engine.js';
import { parseAnnotation } from '../../src/aof/format.js';
import { loadAof } from '../../src/aof/loader.js';
import { readManifest } from '../../src/aof/manifest.js';
import { isAofqError } from '../../src/errors/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { FaultyFs, redisCheckAof, turns } from '../fault/faulty-fs.js';
import { CollectingSink, engineHarness, testConfig } from '../helpers/aof-fixtures.js';

const h = engineHarness('aofq-writer-');
const open = h.open;

function incrPath(engine: AofEngine): string {
  return path.join(engine.dirPathName, engine.currentFileName as string);
}

/** Annotation lines of a file, parsed. */
async function annotations(file: string) {
  const text = (await fsp.readFile(file)).toString('latin1');
  return text
    .split('\r\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => parseAnnotation(l.slice(1)));
}

async function load(overrides: Partial<AofConfig> = {}): Promise<CollectingSink> {
  const sink = new CollectingSink();
  await loadAof(
    testConfig(h.root, overrides),
    (await import('../../src/aof/fs.js')).realFs,
    sink,
    silentLogger,
  );
  return sink;
}

const rec = (i: number): string[] => ['SET', `key:${i}`, `value-${i}`];

describe('AofEngine open', () => {
  it('creates base seq 1 and incr seq 1 with headers, and a manifest naming them', async () => {
    const engine = await open();
    expect(engine.lastLsn).toBe(0);
    const manifest = await readManifest(
      (await import('../../src/aof/fs.js')).realFs,
      engine.dirPathName,
      'appendonly.aof',
    );
    expect(manifest?.entries.map((e) => `${e.name}:${e.type}:${e.seq}`)).toEqual([
      'appendonly.aof.1.base.aof:b:1',
      'appendonly.aof.1.incr.aof:i:1',
    ]);
    expect(manifest?.nextSeq).toBe(2);
    const base = await fsp.readFile(path.join(engine.dirPathName, 'appendonly.aof.1.base.aof'), 'latin1');
    expect(base).toBe('#aofq v=1 kind=base lsn=0\r\n');
    const incr = await fsp.readFile(incrPath(engine), 'latin1');
    expect(incr).toBe('#aofq v=1 kind=incr lsn=0\r\n');
    expect(redisCheckAof(path.join(engine.dirPathName, 'appendonly.aof.manifest')).status).toBe(0);
  });
});

describe('group commit', () => {
  for (const policy of ['always', 'everysec', 'no'] as const) {
    it(`puts N appends of one turn in one batch (${policy})`, async () => {
      const engine = await open({ appendfsync: policy });
      const lsns: number[] = [];
      for (let i = 1; i <= 50; i++) lsns.push(engine.append(rec(i)));
      expect(lsns).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      await engine.waitWritten(50);
      await engine.close();
      const anns = await annotations(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof'));
      const batches = anns.filter((a) => a.type === 'batch');
      expect(batches).toHaveLength(1);
      expect(batches[0]).toMatchObject({ type: 'batch', batch: { lsn: 1, count: 50 } });
      const sink = await load();
      expect(sink.lsns()).toEqual(lsns);
      expect(sink.commands()[49]).toBe('SET key:50 value-50');
      expect(redisCheckAof(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof')).status).toBe(0);
    });
  }

  it('lets concurrent writers under always share fsyncs, one fsync in flight', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'always' }, { fs });
    const before = fs.datasyncs;
    const writers = 20;
    const each = 25;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < each; i++) {
          const lsn = engine.append(['SET', `w${w}`, String(i)]);
          await engine.waitDurable(lsn);
          expect(engine.fsyncedLsn).toBeGreaterThanOrEqual(lsn);
        }
      }),
    );
    const fsyncs = fs.datasyncs - before;
    expect(fsyncs).toBeLessThan((writers * each) / 4);
    expect(engine.fsyncedLsn).toBe(writers * each);
    await engine.close();
    const anns = await annotations(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof'));
    const counts = anns.flatMap((a) => (a.type === 'batch' ? [a.batch.count] : []));
    expect(counts.reduce((s, n) => s + n, 0)).toBe(writers * each);
    expect(Math.max(...counts)).toBeGreaterThan(1);
    const sink = await load();
    expect(sink.records).toHaveLength(writers * each);
  });

  it('cuts a batch at maxBatchBytes and moves a growing batch to a larger arena chunk', async () => {
    const engine = await open(
      { appendfsync: 'no' },
      { timing: { maxBatchBytes: 1000, arenaChunkBytes: 512 } },
    );
    const big = 'x'.repeat(700);
    for (let i = 0; i < 30; i++) engine.append(['SET', `k${i}`, i % 3 === 0 ? big : `v${i}`]);
    await engine.close();
    const anns = await annotations(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof'));
    const batches = anns.flatMap((a) => (a.type === 'batch' ? [a.batch] : []));
    expect(batches.length).toBeGreaterThan(5);
    for (const b of batches) expect(b.bytes <= 1000 || b.count === 1).toBe(true);
    const sink = await load();
    expect(sink.lsns()).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(sink.records[27]?.argv[2]).toBe(big);
  });

  it('appends records that are already RESP (appendEncoded) and binary arguments', async () => {
    const engine = await open();
    const binary = Buffer.from([0, 13, 10, 255, 36, 42]);
    engine.append([Buffer.from('SET'), Buffer.from('bin'), binary]);
    engine.appendEncoded(Buffer.from('*2\r\n$3\r\nDEL\r\n$3\r\nbin\r\n'));
    engine.append(['SET', 'ü', 'ñ']);
    await engine.close();
    const sink = new CollectingSink();
    const raw: Buffer[][] = [];
    await loadAof(
      testConfig(h.root),
      (await import('../../src/aof/fs.js')).realFs,
      {
        record: (argv, lsn) => {
          raw.push(argv.map((a) => Buffer.from(a)));
          sink.record(argv, lsn);
        },
      },
      silentLogger,
    );
    expect(raw[0]?.[2]?.equals(binary)).toBe(true);
    expect(sink.commands().slice(1)).toEqual(['DEL bin', 'SET ü ñ']);
  });
});

describe('waitDurable', () => {
  it('always: resolves only after the batch is written and fsynced', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'always' }, { fs });
    const datasyncsBefore = fs.datasyncs;
    const gate = fs.holdDatasync();
    const lsn = engine.append(rec(1));
    let durable = false;
    const wait = engine.waitDurable(lsn).then(() => {
      durable = true;
    });
    await engine.waitWritten(lsn);
    await gate.entered;
    await turns(5);
    expect(durable).toBe(false);
    expect(engine.fsyncedLsn).toBe(0);
    // Records appended while the fsync is in flight form the next batch, written at once
    // (write(2) runs on this thread), and wait for the next fsync: one is in flight at a time.
    const second = [engine.append(rec(2)), engine.append(rec(3))];
    await engine.waitWritten(second[1] as number);
    await turns(5);
    expect(engine.writtenLsn).toBe(3);
    expect(engine.fsyncedLsn).toBe(0);
    expect(fs.datasyncs).toBe(datasyncsBefore + 1);
    gate.release();
    await wait;
    expect(engine.fsyncedLsn).toBeGreaterThanOrEqual(1);
    await engine.waitDurable(second[1] as number);
    expect(engine.fsyncedLsn).toBe(3);
    await engine.close();
    const anns = await annotations(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof'));
    expect(anns.flatMap((a) => (a.type === 'batch' ? [a.batch.count] : []))).toEqual([1, 2]);
  });

  it('always: a wait on a durable LSN does not wait behind a later batch in flight', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'always' }, { fs });
    const first = engine.append(rec(1));
    await engine.waitDurable(first);
    const gate = fs.holdDatasync();
    const second = engine.append(rec(2));
    await gate.entered;
    let secondDurable = false;
    void engine.waitDurable(second).then(() => {
      secondDurable = true;
    });
    await engine.waitDurable(first);
    expect(secondDurable).toBe(false);
    gate.release();
    await engine.waitDurable(second);
  });

  it('everysec: written first, durable after the background fsync, tail synced without new writes', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'everysec' }, { fs, timing: { everysecIntervalMs: 30 } });
    const gate = fs.holdDatasync();
    const lsn = engine.append(rec(1));
    let durable = false;
    const wait = engine.waitDurable(lsn).then(() => {
      durable = true;
    });
    await engine.waitWritten(lsn);
    expect(engine.writtenLsn).toBe(1);
    await gate.entered; // the timer started the fsync with no further write
    expect(engine.info().aof_pending_bio_fsync).toBe(1);
    expect(durable).toBe(false);
    gate.release();
    await wait;
    expect(engine.fsyncedLsn).toBe(1);
    expect(engine.info().aof_pending_bio_fsync).toBe(0);
  });

  it('no: resolves once written, never fsyncs until close', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'no' }, { fs });
    const syncsBefore = fs.datasyncs;
    const lsns = [engine.append(rec(1)), engine.append(rec(2))];
    await engine.waitDurable(lsns[1] as number);
    expect(engine.writtenLsn).toBe(2);
    expect(engine.fsyncedLsn).toBe(0);
    let fsynced = false;
    const fsyncWait = engine.waitFsynced(2).then(() => {
      fsynced = true;
    });
    await turns(10);
    expect(fsynced).toBe(false);
    expect(fs.datasyncs).toBe(syncsBefore);
    await engine.close();
    await fsyncWait;
    expect(engine.fsyncedLsn).toBe(2);
    expect(fs.datasyncs).toBe(syncsBefore + 1);
  });

  it('resolves at once for LSNs already durable, and sync() forces an fsync under no', async () => {
    const engine = await open({ appendfsync: 'no' });
    const lsn = engine.append(rec(1));
    await engine.sync();
    expect(engine.fsyncedLsn).toBe(lsn);
    await engine.waitFsynced(lsn);
    await engine.waitDurable(lsn);
  });

  it('follows CONFIG SET appendfsync at run time', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'no' }, { fs });
    await engine.waitDurable(engine.append(rec(1)));
    expect(engine.fsyncedLsn).toBe(0);
    engine.setAppendFsync('always');
    const lsn = engine.append(rec(2));
    await engine.waitDurable(lsn);
    expect(engine.fsyncedLsn).toBe(2);
    engine.setAppendFsync('everysec');
    expect(engine.appendFsync).toBe('everysec');
    // A wait made under a syncing policy is resolved when switching to no.
    const gate = fs.holdDatasync();
    const third = engine.append(rec(3));
    await engine.waitWritten(third);
    const wait = engine.waitFsynced(third);
    gate.release();
    engine.setAppendFsync('no');
    await wait;
    expect(engine.fsyncedLsn).toBe(3);
  });
});

describe('LSN continuity', () => {
  it('continues across close/reopen and rotate, header lsn = last LSN of the previous file', async () => {
    let engine = await open({ appendfsync: 'always' });
    for (let i = 1; i <= 5; i++) engine.append(rec(i));
    await engine.close();

    let sink = new CollectingSink();
    engine = await open({ appendfsync: 'always' }, {}, sink);
    expect(sink.lsns()).toEqual([1, 2, 3, 4, 5]);
    expect(engine.lastLsn).toBe(5);
    expect([engine.append(rec(6)), engine.append(rec(7)), engine.append(rec(8))]).toEqual([6, 7, 8]);
    const beforeRotate = engine.currentFileName;
    await engine.rotate();
    expect(engine.currentFileName).toBe('appendonly.aof.2.incr.aof');
    expect(engine.currentFileName).not.toBe(beforeRotate);
    expect([engine.append(rec(9)), engine.append(rec(10))]).toEqual([9, 10]);
    await engine.waitDurable(10);
    await engine.rotate();
    await engine.close();

    const dir = path.join(h.root, 'appendonlydir');
    expect(await fsp.readFile(path.join(dir, 'appendonly.aof.2.incr.aof'), 'latin1')).toMatch(
      /^#aofq v=1 kind=incr lsn=8\r\n#aofq b lsn=9 n=2 /,
    );
    expect(await fsp.readFile(path.join(dir, 'appendonly.aof.3.incr.aof'), 'latin1')).toBe(
      '#aofq v=1 kind=incr lsn=10\r\n',
    );
    sink = new CollectingSink();
    engine = await open({ appendfsync: 'always' }, {}, sink);
    expect(sink.lsns()).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(sink.commands()[8]).toBe('SET key:9 value-9');
    expect(engine.append(rec(11))).toBe(11);
    await engine.close();
    const manifest = await readManifest((await import('../../src/aof/fs.js')).realFs, dir, 'appendonly.aof');
    expect(manifest?.entries.filter((e) => e.type === 'i').map((e) => [e.seq, e.startLsn])).toEqual([
      [1, 0],
      [2, 8],
      [3, 10],
    ]);
    expect(manifest?.nextSeq).toBe(4);
    expect(redisCheckAof(path.join(dir, 'appendonly.aof.manifest')).status).toBe(0);
  });

  it('sends records appended during a rotation to the new file', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'everysec' }, { fs });
    engine.append(rec(1));
    const gate = fs.holdDatasync();
    const rotation = engine.rotate();
    await gate.entered; // the rotation is fsyncing the old file
    const during = engine.append(rec(2));
    gate.release();
    await rotation;
    await engine.close();
    const dir = path.join(h.root, 'appendonlydir');
    const first = await fsp.readFile(path.join(dir, 'appendonly.aof.1.incr.aof'), 'latin1');
    const second = await fsp.readFile(path.join(dir, 'appendonly.aof.2.incr.aof'), 'latin1');
    expect(first).toContain('key:1');
    expect(second).toContain('key:2');
    expect(second.startsWith(`#aofq v=1 kind=incr lsn=${during - 1}\r\n`)).toBe(true);
    const sink = await load();
    expect(sink.lsns()).toEqual([1, 2]);
  });
});

describe('everysec postponement', () => {
  it('postpones a write behind a pending fsync, then writes anyway and counts aof_delayed_fsync', async () => {
    const fs = new FaultyFs();
    const engine = await open(
      { appendfsync: 'everysec' },
      { fs, timing: { everysecIntervalMs: 10, maxFsyncPostponeMs: 150 } },
    );
    const gate = fs.holdDatasync();
    await engine.waitWritten(engine.append(rec(1)));
    await gate.entered;
    const started = performance.now();
    const second = engine.append(rec(2));
    await turns(5);
    expect(engine.writtenLsn).toBe(1);
    expect(engine.info().aof_buffer_length).toBeGreaterThan(0);
    await engine.waitWritten(second);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(engine.info().aof_delayed_fsync).toBe(1);
    expect(engine.info().aof_pending_bio_fsync).toBe(1);
    gate.release();
    await engine.waitDurable(second);
    expect(engine.info().aof_delayed_fsync).toBe(1);
  });

  it('writes as soon as the pending fsync completes, without counting a delay', async () => {
    const fs = new FaultyFs();
    const engine = await open(
      { appendfsync: 'everysec' },
      { fs, timing: { everysecIntervalMs: 10, maxFsyncPostponeMs: 10_000 } },
    );
    const gate = fs.holdDatasync();
    await engine.waitWritten(engine.append(rec(1)));
    await gate.entered;
    const second = engine.append(rec(2));
    await turns(5);
    expect(engine.writtenLsn).toBe(1);
    gate.release();
    await engine.waitWritten(second);
    expect(engine.info().aof_delayed_fsync).toBe(0);
  });
});

describe('timestamps', () => {
  it('writes #TS:<unix-s> before a batch when the second changed, at most one a second', async () => {
    const clock = new ManualClock(1_700_000_000_250);
    const engine = await open({ appendfsync: 'no', aofTimestampEnabled: true }, { clock });
    await engine.waitWritten(engine.append(rec(1)));
    clock.advance(500); // same second
    await engine.waitWritten(engine.append(rec(2)));
    clock.advance(500); // next second
    await engine.waitWritten(engine.append(rec(3)));
    clock.advance(3000);
    await engine.waitWritten(engine.append(rec(4)));
    await engine.close();
    const anns = await annotations(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof'));
    const kinds = anns.map((a) =>
      a.type === 'timestamp'
        ? `TS${a.unixSeconds}`
        : a.type === 'batch'
          ? `B${a.batch.lsn}@${a.batch.ms}`
          : a.type,
    );
    expect(kinds).toEqual([
      'header',
      'TS1700000000',
      'B1@1700000000250',
      'B2@1700000000750',
      'TS1700000001',
      'B3@1700000001250',
      'TS1700000004',
      'B4@1700000004250',
    ]);
    const sink = await load();
    expect(sink.lsns()).toEqual([1, 2, 3, 4]);
    expect(redisCheckAof(path.join(h.root, 'appendonlydir', 'appendonly.aof.1.incr.aof')).status).toBe(0);
  });
});

describe('close and INFO', () => {
  it('flushes on close, refuses later appends with AOFQ_ERR_AOF_CLOSED', async () => {
    const engine = await open({ appendfsync: 'everysec' });
    const lsn = engine.append(rec(1));
    const durable = engine.waitDurable(lsn);
    await engine.close();
    await durable;
    expect(engine.fsyncedLsn).toBe(1);
    expect(engine.writable).toBe(false);
    let code: string | undefined;
    try {
      engine.append(rec(2));
    } catch (err) {
      if (isAofqError(err)) code = err.code;
    }
    expect(code).toBe('AOFQ_ERR_AOF_CLOSED');
    await engine.close(); // idempotent
  });

  it("reports Redis's persistence fields and ours", async () => {
    const engine = await open({ appendfsync: 'always' });
    await engine.waitDurable(engine.append(rec(1)));
    const info = engine.info();
    expect(info).toMatchObject({
      loading: 0,
      aof_enabled: 1,
      aof_rewrite_in_progress: 0,
      aof_rewrite_scheduled: 0,
      aof_last_rewrite_time_sec: -1,
      aof_current_rewrite_time_sec: -1,
      aof_last_bgrewrite_status: 'ok',
      aof_rewrites: 0,
      aof_rewrites_consecutive_failures: 0,
      aof_last_write_status: 'ok',
      aof_pending_rewrite: 0,
      aof_buffer_length: 0,
      aof_pending_bio_fsync: 0,
      aof_delayed_fsync: 0,
      aof_last_lsn: 1,
      aof_fsynced_lsn: 1,
    });
    const dir = path.join(h.root, 'appendonlydir');
    const sizes =
      (await fsp.stat(path.join(dir, 'appendonly.aof.1.base.aof'))).size +
      (await fsp.stat(path.join(dir, 'appendonly.aof.1.incr.aof'))).size;
    expect(info.aof_current_size).toBe(sizes);
    expect(info.aof_base_size).toBe(27);
    expect(Number(info.aof_last_fsync_latency_us)).toBeGreaterThan(0);
    await engine.close();
    const reopened = await open({ appendfsync: 'always' });
    expect(reopened.loadProgress).toEqual({ loading: false, doneBytes: sizes, totalBytes: sizes });
    expect(reopened.info().aof_current_size).toBe(sizes);
  });

  it('reports loading:1 while start() runs', async () => {
    const engine = AofEngine.create(testConfig(h.root), { logger: silentLogger });
    h.track(engine);
    const started = engine.start(new CollectingSink());
    expect(engine.info().loading).toBe(1);
    expect(engine.loadProgress.loading).toBe(true);
    await started;
    expect(engine.info().loading).toBe(0);
  });

  it('keeps LSNs without a disk when appendonly is off', async () => {
    const engine = await open({ appendonly: false });
    expect(engine.append(rec(1))).toBe(1);
    await engine.waitDurable(1);
    expect(engine.info().aof_enabled).toBe(0);
    expect(engine.info()).not.toHaveProperty('aof_current_size');
    await expect(fsp.stat(path.join(h.root, 'appendonlydir'))).rejects.toThrow();
  });
});
