import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AofEngine } from '../../src/aof/engine.js';
import { realFs } from '../../src/aof/fs.js';
import { formatInfoSection } from '../../src/aof/info.js';
import { loadAof } from '../../src/aof/loader.js';
import { readManifest } from '../../src/aof/manifest.js';
import { silentLogger } from '../../src/util/logger.js';
import { FaultyFs, redisCheckAof } from '../fault/faulty-fs.js';
import {
  baseName,
  buildAofqFile,
  CollectingSink,
  engineHarness,
  incrName,
  respRecords,
  testConfig,
  writeAofDir,
} from '../helpers/aof-fixtures.js';

const h = engineHarness('aofq-engine-');
const open = h.open;

async function loadAll(): Promise<CollectingSink> {
  const sink = new CollectingSink();
  await loadAof(testConfig(h.root), realFs, sink, silentLogger);
  return sink;
}

const dir = (): string => path.join(h.root, 'appendonlydir');

describe('AofEngine.open on existing directories', () => {
  it('removes the header-only files of a first start that crashed before its manifest', async () => {
    await fsp.mkdir(dir());
    await fsp.writeFile(path.join(dir(), baseName(1)), '#aofq v=1 kind=base lsn=0\r\n');
    await fsp.writeFile(path.join(dir(), incrName(1)), '#aofq v=1 kind=incr lsn=0\r\n');
    const engine = await open();
    expect(engine.append(['SET', 'a', '1'])).toBe(1);
    await engine.close();
    expect((await loadAll()).commands()).toEqual(['SET a 1']);
  });

  it('refuses (does not delete) files without a manifest that hold data', async () => {
    await fsp.mkdir(dir());
    const file = buildAofqFile({ kind: 'incr', lsn: 0, batches: [[['SET', 'a', '1']]] });
    await fsp.writeFile(path.join(dir(), incrName(1)), file);
    await expect(open()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_MANIFEST' });
    expect((await fsp.readFile(path.join(dir(), incrName(1)))).equals(file)).toBe(true);
  });

  it('imports a single-file AOF written by Redis, then appends to a fresh incr file of ours', async () => {
    await fsp.writeFile(
      path.join(h.root, 'appendonly.aof'),
      respRecords([
        ['SET', 'r1', 'x'],
        ['SET', 'r2', 'y'],
      ]),
    );
    const sink = new CollectingSink();
    const engine = await open({}, {}, sink);
    expect(sink.lsns()).toEqual([1, 2]);
    expect(engine.lastLoad?.imported).toBe(true);
    expect(engine.currentFileName).toBe(incrName(2));
    expect(engine.append(['SET', 'ours', 'z'])).toBe(3);
    await engine.close();
    expect(await fsp.readFile(path.join(dir(), incrName(2)), 'latin1')).toMatch(
      /^#aofq v=1 kind=incr lsn=2\r\n#aofq b lsn=3 n=1 /,
    );
    expect((await loadAll()).commands()).toEqual(['SET r1 x', 'SET r2 y', 'SET ours z']);
    expect(redisCheckAof(path.join(dir(), 'appendonly.aof.manifest')).status).toBe(0);
  });

  it('rotates away from a last incr file written by Redis (no header) before appending', async () => {
    await writeAofDir(h.root, [
      { name: baseName(1), seq: 1, type: 'b', content: respRecords([['SET', 'b', '0']]) },
      { name: incrName(1), seq: 1, type: 'i', content: respRecords([['SET', 'i', '1']]) },
    ]);
    const redisIncr = await fsp.readFile(path.join(dir(), incrName(1)));
    const engine = await open();
    expect(engine.lastLsn).toBe(2);
    expect(engine.currentFileName).toBe(incrName(2));
    await engine.waitDurable(engine.append(['SET', 'n', '3']));
    await engine.close();
    expect((await fsp.readFile(path.join(dir(), incrName(1)))).equals(redisIncr)).toBe(true);
    const manifest = await readManifest(realFs, dir(), 'appendonly.aof');
    expect(manifest?.entries.map((e) => [e.name, e.type, e.startLsn])).toEqual([
      [baseName(1), 'b', undefined],
      [incrName(1), 'i', undefined],
      [incrName(2), 'i', 2],
    ]);
    expect((await loadAll()).lsns()).toEqual([1, 2, 3]);
  });

  it('repairs a last incr file cut anywhere inside its header, then appends to it (every cut point)', async () => {
    // A base, then incr 1 with two records, then incr 2 (after a rotation) holding only its header.
    const header2 = '#aofq v=1 kind=incr lsn=2\r\n';
    const files = (incr2: Buffer) =>
      writeAofDir(h.root, [
        {
          name: baseName(1),
          seq: 1,
          type: 'b',
          startLsn: 0,
          content: buildAofqFile({ kind: 'base', lsn: 0, batches: [] }),
        },
        {
          name: incrName(1),
          seq: 1,
          type: 'i',
          startLsn: 0,
          content: buildAofqFile({
            kind: 'incr',
            lsn: 0,
            batches: [[['SET', 'a', '1']], [['SET', 'b', '2']]],
          }),
        },
        { name: incrName(2), seq: 2, type: 'i', startLsn: 2, content: incr2 },
      ]);
    for (let cut = 0; cut < header2.length; cut++) {
      await fsp.rm(h.root, { recursive: true, force: true });
      await files(Buffer.from(header2.slice(0, cut), 'latin1'));
      const sink = new CollectingSink();
      const engine = await open({ appendfsync: 'always' }, {}, sink);
      expect(sink.commands()).toEqual(['SET a 1', 'SET b 2']);
      expect(engine.currentFileName).toBe(incrName(2));
      await engine.waitDurable(engine.append(['SET', 'c', `${cut}`]));
      await engine.close();
      const incr2 = await fsp.readFile(path.join(dir(), incrName(2)), 'latin1');
      expect(incr2.startsWith(`${header2}#aofq b lsn=3 n=1 `)).toBe(true);
      const manifest = await readManifest(realFs, dir(), 'appendonly.aof');
      expect(manifest?.entries.map((e) => e.name)).toEqual([baseName(1), incrName(1), incrName(2)]);
      expect((await loadAll()).commands()).toEqual(['SET a 1', 'SET b 2', `SET c ${cut}`]);
      expect(redisCheckAof(path.join(dir(), 'appendonly.aof.manifest')).status).toBe(0);
    }
  });

  it('continues after a torn tail that the loader cut off', async () => {
    let engine = await open({ appendfsync: 'always' });
    for (let i = 0; i < 3; i++) await engine.waitDurable(engine.append(['SET', `k${i}`, 'v']));
    await engine.close();
    const incr = path.join(dir(), incrName(1));
    const good = (await fsp.stat(incr)).size;
    await fsp.appendFile(incr, '#aofq b lsn=4 n=2 len=60 crc=00000000 ms=1\r\n*3\r\n$3\r\nSET');
    const sink = new CollectingSink();
    engine = await open({ appendfsync: 'always' }, {}, sink);
    expect(sink.lsns()).toEqual([1, 2, 3]);
    expect(engine.lastLoad?.truncated?.offset).toBe(good);
    expect(engine.append(['SET', 'after', 'tear'])).toBe(4);
    await engine.close();
    expect((await loadAll()).commands().at(-1)).toBe('SET after tear');
    expect(redisCheckAof(incr).status).toBe(0);
  });
});

describe('AofEngine life cycle', () => {
  it('ends closed when close() is called while loading', async () => {
    const engine = AofEngine.create(testConfig(h.root), { logger: silentLogger });
    const started = engine.start(new CollectingSink());
    const closed = engine.close();
    await started;
    await closed;
    expect(engine.writable).toBe(false);
    expect(() => engine.append(['SET', 'a', '1'])).toThrow(/closed/);
  });
});

describe('AofEngine.rotate', () => {
  it('fails cleanly when the new file cannot be created, and keeps appending to the old one', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'always' }, { fs, timing: { writeRetryMs: 10 } });
    await engine.waitDurable(engine.append(['SET', 'a', '1']));
    fs.writeError = 'ENOSPC'; // the new file's header write fails
    await expect(engine.rotate()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_WRITE_FAILED' });
    fs.writeError = null;
    expect(engine.currentFileName).toBe(incrName(1));
    await expect(fsp.stat(path.join(dir(), incrName(2)))).rejects.toThrow();
    await engine.waitDurable(engine.append(['SET', 'b', '2']));
    await engine.rotate(); // and works once the disk does
    expect(engine.currentFileName).toBe(incrName(2));
    await engine.close();
    expect((await loadAll()).commands()).toEqual(['SET a 1', 'SET b 2']);
  });

  it('overwrites a stale file left by a rotation that crashed before its manifest', async () => {
    let engine = await open({ appendfsync: 'always' });
    await engine.waitDurable(engine.append(['SET', 'a', '1']));
    await engine.close();
    await fsp.writeFile(path.join(dir(), incrName(2)), 'garbage from a crashed rotation');
    engine = await open({ appendfsync: 'always' });
    await engine.rotate();
    await engine.waitDurable(engine.append(['SET', 'b', '2']));
    await engine.close();
    expect(await fsp.readFile(path.join(dir(), incrName(2)), 'latin1')).toMatch(
      /^#aofq v=1 kind=incr lsn=1\r\n#aofq b lsn=2 n=1 /,
    );
    expect((await loadAll()).commands()).toEqual(['SET a 1', 'SET b 2']);
  });

  it('runs concurrent rotations one after the other, each with a new sequence number', async () => {
    const engine = await open({ appendfsync: 'everysec' });
    engine.append(['SET', 'a', '1']);
    await Promise.all([engine.rotate(), engine.rotate(), engine.rotate()]);
    expect(engine.currentFileName).toBe(incrName(4));
    engine.append(['SET', 'b', '2']);
    await engine.close();
    const manifest = await readManifest(realFs, dir(), 'appendonly.aof');
    expect(manifest?.entries.filter((e) => e.type === 'i').map((e) => [e.seq, e.startLsn])).toEqual([
      [1, 0],
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
    expect((await loadAll()).lsns()).toEqual([1, 2]);
    expect(redisCheckAof(path.join(dir(), 'appendonly.aof.manifest')).status).toBe(0);
  });
});

describe('formatInfoSection', () => {
  it("produces Redis's INFO text", () => {
    expect(
      formatInfoSection('Persistence', { loading: 0, aof_last_write_status: 'ok', aof_delayed_fsync: 3 }),
    ).toBe('# Persistence\r\nloading:0\r\naof_last_write_status:ok\r\naof_delayed_fsync:3\r\n');
  });

  it('formats the engine fields, write status err while failing', async () => {
    const fs = new FaultyFs();
    const engine = await open({ appendfsync: 'always' }, { fs, timing: { writeRetryMs: 10 } });
    fs.writeError = 'EIO';
    const wait = engine.waitDurable(engine.append(['SET', 'a', '1']));
    for (let i = 0; i < 1000 && engine.writable; i++) await new Promise((r) => setTimeout(r, 2));
    const text = formatInfoSection('Persistence', engine.info());
    expect(text).toContain('\r\naof_last_write_status:err\r\n');
    expect(text).toMatch(/^# Persistence\r\nloading:0\r\naof_enabled:1\r\n/);
    fs.writeError = null;
    await wait;
    expect(formatInfoSection('Persistence', engine.info())).toContain('\r\naof_last_write_status:ok\r\n');
  });
});
