/**
 * The rewrite's parts in isolation: the growth rule and the back-off, the
 * framing of snapshot records, the store's and the queues' compact encodings
 * (round trips, chunking, expired keys, damaged chunks), the base file writer
 * (readable by the loader, incremental fsync), a rewrite asked for while
 * loading (scheduled), and auto-rewrite with the base size persisted across a
 * restart.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofEngine } from '../../src/aof/engine.js';
import { type AofFile, type FsLayer, realFs } from '../../src/aof/fs.js';
import { loadAofFiles } from '../../src/aof/loader.js';
import {
  autoRewriteDue,
  BaseFileWriter,
  openSnapshotChunk,
  parseSnapshotBegin,
  rewriteBackoffMs,
  type Snapshotter,
  snapshotBeginRecord,
  snapshotChunkRecord,
} from '../../src/aof/rewrite.js';
import { AofqNode } from '../../src/node/node.js';
import { replaySink } from '../../src/node/replay-sink.js';
import { writeRewriteBase } from '../../src/node/rewrite-base.js';
import { Queues } from '../../src/queue/index.js';
import { Store } from '../../src/store/index.js';

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-rwunit-'));
  dirs.push(dir);
  return dir;
}

const b = (...args: (string | number)[]): Buffer[] => args.map((a) => Buffer.from(String(a)));
const NOW = 1_700_000_000_000;
const inline: Snapshotter = async (job) => writeRewriteBase(job);

function storeDigest(store: Store): string {
  return store.digestHex();
}

function queuesDigest(queues: Queues): string {
  const hash = createHash('sha256');
  queues.digest(hash);
  return hash.digest('hex');
}

describe('rules', () => {
  it('backs off from 1 minute to 60 minutes after 3 failures in a row', () => {
    expect([0, 1, 2].map(rewriteBackoffMs)).toEqual([0, 0, 0]);
    expect(rewriteBackoffMs(3)).toBe(60_000);
    expect(rewriteBackoffMs(4)).toBe(120_000);
    expect(rewriteBackoffMs(8)).toBe(32 * 60_000);
    expect(rewriteBackoffMs(9)).toBe(60 * 60_000);
    expect(rewriteBackoffMs(100)).toBe(60 * 60_000);
  });

  it("applies Redis's growth formula", () => {
    const due = (currentSize: number, baseSize: number, percentage = 100, minSize = 1000) =>
      autoRewriteDue({ currentSize, baseSize, percentage, minSize });
    expect(due(999, 10)).toBe(false); // under min-size
    expect(due(2000, 1000)).toBe(true); // +100 %
    expect(due(1999, 1000)).toBe(false);
    expect(due(5000, 0)).toBe(true); // unknown base counts as 1 byte
    expect(due(5000, 10, 0)).toBe(false); // percentage 0: off
  });
});

describe('snapshot records', () => {
  it('round-trips a chunk and refuses a flipped byte', () => {
    const record = snapshotChunkRecord('store', Buffer.from('payload bytes'));
    expect(record[0]?.toString()).toBe('AOFQ.SNAPSHOT');
    const opened = openSnapshotChunk(record);
    expect(opened.section).toBe('store');
    expect(opened.payload.toString()).toBe('payload bytes');
    const damaged = Buffer.from(record[2] as Buffer);
    damaged[6] = (damaged[6] as number) ^ 1;
    expect(() => openSnapshotChunk([record[0] as Buffer, record[1] as Buffer, damaged])).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_AOF_SNAPSHOT' }),
    );
  });

  it('reads the version and LSN of the first record, and refuses a newer version', () => {
    expect(parseSnapshotBegin(snapshotBeginRecord(42, NOW))).toEqual({ version: 1, lsn: 42, nowMs: NOW });
    expect(() => parseSnapshotBegin(b('AOFQ.SNAPSHOT-BEGIN', 9, 1, 1))).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_AOF_SNAPSHOT' }),
    );
  });
});

function sampleStore(): Store {
  const store = new Store();
  store.replay(b('SET', 'plain', 'value'));
  store.replay(b('SET', 'ttl', 'soon', 'PXAT', NOW + 60_000));
  store.replay(b('SET', 'expired', 'gone', 'PXAT', NOW - 1));
  store.replay([Buffer.from('SET'), Buffer.from('big'), Buffer.alloc(10_000, 0xfe)]);
  store.replay([Buffer.from('SET'), Buffer.from([0, 1, 255]), Buffer.from([255, 0, 13, 10])]);
  const wide: Buffer[] = b('HSET', 'wide');
  for (let i = 0; i < 150; i++) wide.push(Buffer.from(`f${i}`), Buffer.from(`v${i}`));
  store.replay(wide);
  store.replay(b('PEXPIREAT', 'wide', NOW + 1_000_000));
  for (let i = 0; i < 500; i++) store.replay(b('SET', `k${i}`, `v${i}`));
  return store;
}

describe('store compact encoding', () => {
  for (const maxBytes of [64, 4096, 1 << 20]) {
    it(`round-trips strings, binary, large values, wide hashes and TTLs (chunks of ${maxBytes} bytes)`, () => {
      const store = sampleStore();
      const rebuilt = new Store();
      const chunks = [...store.snapshotChunks(NOW, maxBytes)];
      if (maxBytes === 64) expect(chunks.length).toBeGreaterThan(100);
      for (const chunk of chunks) rebuilt.loadSnapshotChunk(Buffer.from(chunk));
      // Same as the command form, which leaves out the expired key too.
      const viaRecords = new Store();
      for (const record of store.snapshotRecords(NOW)) viaRecords.replay(record);
      expect(storeDigest(rebuilt)).toBe(storeDigest(viaRecords));
      expect(rebuilt.size).toBe(store.size - 1);
    });
  }

  it('refuses a truncated chunk and an unknown tag', () => {
    const [chunk] = [...sampleStore().snapshotChunks(NOW, 1 << 20)];
    expect(() => new Store().loadSnapshotChunk((chunk as Buffer).subarray(0, 20))).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_STORE_BAD_RECORD' }),
    );
    expect(() => new Store().loadSnapshotChunk(Buffer.from([7, 0, 0, 0, 0]))).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_STORE_BAD_RECORD' }),
    );
  });
});

describe('queue compact encoding', () => {
  it('round-trips queues with jobs in several states', () => {
    const queues = new Queues();
    const ctx = { nowMs: NOW };
    for (let i = 0; i < 30; i++) {
      const { records } = queues.execute(
        { op: 'add', queue: i % 2 ? 'a' : 'b', jobs: [{ name: 'n', data: { i, text: 'é ✓' }, opts: {} }] },
        ctx,
      );
      expect(records.length).toBeGreaterThan(0);
    }
    queues.execute({ op: 'lease', queue: 'a', count: 3, leaseMs: 10_000 }, ctx);
    const rebuilt = new Queues();
    for (const chunk of queues.snapshotChunks(NOW, 256)) rebuilt.loadSnapshotChunk(Buffer.from(chunk));
    expect(queuesDigest(rebuilt)).toBe(queuesDigest(queues));
    expect(() => new Queues().loadSnapshotChunk(Buffer.from([0, 0, 0, 9, 0]))).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_QUEUE_RECORD_INVALID' }),
    );
  });
});

describe('base file writer', () => {
  it('writes a base the loader verifies, with an fdatasync every 4 MB', async () => {
    const dir = await tempDir();
    let datasyncs = 0;
    const counting: FsLayer = {
      ...realFs,
      async open(path, mode): Promise<AofFile> {
        const file = await realFs.open(path, mode);
        return {
          write: (buf, position) => file.write(buf, position),
          writeSync: (buf) => file.writeSync(buf),
          truncateSync: (n) => file.truncateSync(n),
          datasync: () => {
            datasyncs++;
            return file.datasync();
          },
          sync: () => file.sync(),
          truncate: (n) => file.truncate(n),
          size: () => file.size(),
          close: () => file.close(),
        };
      },
    };
    const filePath = join(dir, 'base.aof');
    const writer = await BaseFileWriter.create(counting, filePath, 77, {
      incrementalFsync: true,
      nowMs: NOW,
    });
    const value = 'x'.repeat(1000);
    for (let i = 0; i < 12_000; i++) if (writer.add(['SET', `key${i}`, value])) await writer.flush();
    const bytes = await writer.finish();
    expect(bytes).toBe((await readFile(filePath)).length);
    // ~12 MB: at least two incremental fsyncs plus the final one.
    expect(datasyncs).toBeGreaterThanOrEqual(3);
    const store = new Store();
    const loaded = await loadAofFiles(
      realFs,
      [{ path: filePath, name: 'base.aof', type: 'b', startLsn: 77 }],
      {
        record: (argv) => store.replay(argv),
      },
    );
    expect(loaded).toEqual({ lastLsn: 77, records: 12_000 });
    expect(store.size).toBe(12_000);
  });
});

function config(dir: string, overrides: Partial<AofConfig> = {}): AofConfig {
  return { ...DEFAULT_AOF_CONFIG, dir, ...overrides };
}

describe('engine', () => {
  it('schedules a rewrite asked for while loading, and runs it once open', async () => {
    const dir = await tempDir();
    const first = await AofqNode.open(config(dir), { snapshotter: inline });
    await first.command(b('SET', 'k', 'v'));
    await first.close();

    const store = new Store();
    const queues = new Queues();
    const engine = AofEngine.create(config(dir), { snapshotter: inline });
    closers.push(() => engine.close());
    expect(await engine.rewrite()).toEqual({
      status: 'scheduled',
      message: 'Background append only file rewriting scheduled',
    });
    expect(engine.info().aof_rewrite_scheduled).toBe(1);
    await engine.start(replaySink(store, queues));
    expect(await engine.waitRewrite()).toBe(true);
    expect(engine.info().aof_rewrite_scheduled).toBe(0);
    expect(engine.info().aof_rewrites).toBe(1);
    expect(store.size).toBe(1);
  });

  it('rewrites automatically past the growth threshold, and a restart keeps the base size', async () => {
    const dir = await tempDir();
    const cfg = config(dir, { autoAofRewriteMinSize: 20_000, autoAofRewritePercentage: 100 });
    const node = await AofqNode.open(cfg, { snapshotter: inline, rewriteCronMs: 10 });
    closers.push(() => node.close());
    // Overwrite the same 20 keys: the log grows, the state does not.
    for (let i = 0; i < 400 && node.aof.info().aof_rewrites === 0; i++) {
      await node.command(b('SET', `k${i % 20}`, 'y'.repeat(100)));
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 15));
    }
    expect(await node.waitRewrite()).toBe(true);
    expect(node.aof.info().aof_rewrites).toBe(1);
    const baseSize = Number(node.aof.info().aof_base_size);
    expect(baseSize).toBeGreaterThan(0);
    expect(baseSize).toBeLessThan(20_000);
    const manifest = await readFile(join(dir, cfg.appenddirname, `${cfg.appendfilename}.manifest`), 'utf8');
    expect(manifest).toContain(`base-size=${baseSize}`);
    await node.close();

    const again = await AofqNode.open(cfg, { snapshotter: inline, rewriteCronMs: 10 });
    closers.push(() => again.close());
    expect(Number(again.aof.info().aof_base_size)).toBe(baseSize);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(again.aof.info().aof_rewrites).toBe(0);
  });
});
