import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AofConfig } from '../../src/aof/config.js';
import { realFs } from '../../src/aof/fs.js';
import { type LoadResult, loadAof, scanFile } from '../../src/aof/loader.js';
import { readManifest } from '../../src/aof/manifest.js';
import { type AofqError, isAofqError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/util/logger.js';
import {
  aofDir,
  appendBytes,
  baseName,
  buildAofqFile,
  buildBatch,
  CollectingSink,
  fileSize,
  incrName,
  respRecords,
  testConfig,
  writeAofDir,
  writeManifestText,
} from '../helpers/aof-fixtures.js';

let root: string;
let cfg: AofConfig;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join((await import('node:os')).tmpdir(), 'aofq-loader-'));
  cfg = testConfig(root);
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

async function load(
  sink = new CollectingSink(),
  c: AofConfig = cfg,
): Promise<{ result: LoadResult; sink: CollectingSink }> {
  const result = await loadAof(c, realFs, sink, silentLogger);
  return { result, sink };
}

async function loadError(c: AofConfig = cfg): Promise<AofqError> {
  try {
    await loadAof(c, realFs, new CollectingSink(), silentLogger);
  } catch (err) {
    if (isAofqError(err)) return err;
    throw err;
  }
  throw new Error('the load succeeded');
}

const SET = (k: string, v: string) => ['SET', k, v];
const incrFile = (p: string) => path.join(aofDir(root), p);

/** base (lsn 0, one batch) + incr 1 (lsn 0, two batches: 1..2 and 3..3). */
async function standardDir(extraIncr?: Buffer): Promise<void> {
  await writeAofDir(root, [
    {
      name: baseName(1),
      seq: 1,
      type: 'b',
      content: buildAofqFile({ kind: 'base', lsn: 0, batches: [[SET('b', '0')]] }),
    },
    {
      name: incrName(1),
      seq: 1,
      type: 'i',
      content: Buffer.concat([
        buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('a', '1'), SET('a', '2')], [SET('a', '3')]] }),
        extraIncr ?? Buffer.alloc(0),
      ]),
    },
  ]);
}

describe('loadAof: new and empty', () => {
  it('can start when no aof and no manifest', async () => {
    const { result, sink } = await load();
    expect(result).toMatchObject({
      lastLsn: 0,
      lastFile: null,
      truncated: null,
      totalBytes: 0,
      imported: false,
    });
    expect(result.manifest.entries).toEqual([]);
    expect(sink.records).toEqual([]);
  });

  it('can start when we have an empty AOF dir', async () => {
    await fsp.mkdir(aofDir(root));
    const { result } = await load();
    expect(result.manifest.entries).toEqual([]);
  });

  it('refuses a dir holding AOF files but no manifest, naming --rebuild-manifest', async () => {
    await fsp.mkdir(aofDir(root));
    await fsp.writeFile(incrFile(incrName(1)), respRecords([SET('a', '1')]));
    const err = await loadError();
    expect(err.code).toBe('AOFQ_ERR_AOF_MANIFEST');
    expect(err.message).toContain('--rebuild-manifest');
  });
});

describe('loadAof: files of ours', () => {
  it('loads base then incr with LSNs from the headers, and reports progress and the last file', async () => {
    await standardDir();
    const { result, sink } = await load();
    expect(sink.commands()).toEqual(['SET b 0', 'SET a 1', 'SET a 2', 'SET a 3']);
    expect(sink.lsns()).toEqual([0, 1, 2, 3]);
    expect(result.lastLsn).toBe(3);
    expect(result.records).toBe(4);
    expect(result.truncated).toBeNull();
    const incrSize = await fileSize(incrFile(incrName(1)));
    expect(result.lastFile).toEqual({
      name: incrName(1),
      size: incrSize,
      type: 'i',
      header: { kind: 'incr', lsn: 0 },
    });
    expect(result.totalBytes).toBe(incrSize + (await fileSize(incrFile(baseName(1)))));
    expect(sink.lastProgress).toEqual([result.totalBytes, result.totalBytes]);
  });

  it('a base at LSN 10 gives its records LSN 10 and the incr continues at 11', async () => {
    await writeAofDir(root, [
      {
        name: baseName(2),
        seq: 2,
        type: 'b',
        startLsn: 10,
        content: buildAofqFile({ kind: 'base', lsn: 10, batches: [[SET('x', '1'), SET('y', '2')]] }),
      },
      {
        name: incrName(3),
        seq: 3,
        type: 'i',
        startLsn: 10,
        content: buildAofqFile({ kind: 'incr', lsn: 10, batches: [[SET('z', '3')]] }),
      },
    ]);
    const { result, sink } = await load();
    expect(sink.lsns()).toEqual([10, 10, 11]);
    expect(result.lastLsn).toBe(11);
  });

  it('loads #TS lines between batches, and skips history files', async () => {
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: buildAofqFile({ kind: 'base', lsn: 0, batches: [] }) },
      { name: incrName(1), seq: 1, type: 'h', content: 'garbage, never read' },
      {
        name: incrName(2),
        seq: 2,
        type: 'i',
        content: buildAofqFile({
          kind: 'incr',
          lsn: 0,
          timestamps: true,
          batches: [[SET('a', '1')], [SET('b', '2')]],
        }),
      },
    ]);
    const { sink } = await load();
    expect(sink.commands()).toEqual(['SET a 1', 'SET b 2']);
  });

  it('can load data when some AOFs are empty (an empty incr, and an incr with only a header)', async () => {
    await writeAofDir(root, [
      {
        name: baseName(1),
        seq: 1,
        type: 'b',
        content: buildAofqFile({ kind: 'base', lsn: 0, batches: [[SET('a', '1')]] }),
      },
      { name: incrName(1), seq: 1, type: 'i', content: '' },
      { name: incrName(2), seq: 2, type: 'i', content: buildAofqFile({ kind: 'incr', lsn: 0, batches: [] }) },
      {
        name: incrName(3),
        seq: 3,
        type: 'i',
        content: buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('b', '2')]] }),
      },
    ]);
    const { sink, result } = await load();
    expect(sink.commands()).toEqual(['SET a 1', 'SET b 2']);
    expect(sink.lsns()).toEqual([0, 1]);
    expect(result.lastLsn).toBe(1);
  });

  it('refuses an LSN gap between files', async () => {
    await writeAofDir(root, [
      {
        name: incrName(1),
        seq: 1,
        type: 'i',
        content: buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('a', '1')]] }),
      },
      {
        name: incrName(2),
        seq: 2,
        type: 'i',
        content: buildAofqFile({ kind: 'incr', lsn: 5, batches: [[SET('b', '2')]] }),
      },
    ]);
    const err = await loadError();
    expect(err.code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(err.message).toContain(incrName(2));
    expect(err.message).toContain('LSN 5, expected 1');
  });

  it('refuses a batch whose LSN is not the next one (even at the end of the last file)', async () => {
    await standardDir(buildBatch([SET('x', '1')], { lsn: 9 }));
    const err = await loadError();
    expect(err.code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(err.params.lsn).toBe(9);
  });

  it('refuses a header whose kind disagrees with the manifest', async () => {
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: buildAofqFile({ kind: 'incr', lsn: 0, batches: [] }) },
    ]);
    expect((await loadError()).message).toContain('kind=incr');
  });

  it('wraps an error from the sink with the file, offset and LSN', async () => {
    await standardDir();
    const sink = new CollectingSink();
    sink.record = (argv, lsn) => {
      if (lsn === 2) throw new Error(`unknown command '${argv[0]?.toString()}'`);
    };
    await expect(loadAof(cfg, realFs, sink, silentLogger)).rejects.toMatchObject({
      code: 'AOFQ_ERR_AOF_BAD_RECORD',
      params: { file: incrName(1), lsn: 2 },
    });
  });
});

describe('loadAof: manifest cases (Redis "Multi Part AOF can\'t load data when ...")', () => {
  const incr1 = () => respRecords([SET('k1', 'v1')]);

  it('some file missing', async () => {
    await writeAofDir(root, [
      { name: incrName(1), seq: 1, type: 'i', content: incr1() },
      { name: incrName(2), seq: 2, type: 'i', content: '', missing: true },
    ]);
    const err = await loadError();
    expect(err.code).toBe('AOFQ_ERR_AOF_MISSING_FILE');
    expect(err.message).toBe(`The AOF file ${incrName(2)} doesn't exist`);
  });

  const manifestCases: [string, string, string][] = [
    [
      'the sequence does not increase monotonically',
      `file ${incrName(2)} seq 2 type i\nfile ${incrName(1)} seq 1 type i\n`,
      'Found a non-monotonic sequence number',
    ],
    [
      'there are blank lines in the manifest file',
      `file ${incrName(1)} seq 1 type i\n\n`,
      'Invalid AOF manifest file format',
    ],
    [
      'there is a duplicate base file',
      `file ${incrName(1)} seq 1 type b\nfile ${incrName(2)} seq 2 type b\n`,
      'Found duplicate base file information',
    ],
    ['the type is unknown', `file ${incrName(1)} seq 1 type x\n`, 'Unknown AOF file type'],
    ['a key is missing', `filx ${incrName(1)} seq 1 type i\n`, 'Invalid AOF manifest file format'],
    ['the line is too short', `file ${incrName(1)} type i\n`, 'Invalid AOF manifest file format'],
    [
      'the line is too long',
      `file ${incrName(1)}${'a'.repeat(1030)} seq 1 type i\n`,
      'The AOF manifest file contains too long line',
    ],
    [
      'there is an odd parameter',
      `file ${incrName(1)} seq 1 type i newkey\n`,
      'Invalid AOF manifest file format',
    ],
    ['the manifest file is empty', '', 'Found an empty AOF manifest'],
    ['a file is a path', `file ../${incrName(1)} seq 1 type i\n`, "File can't be a path, just a filename"],
  ];
  for (const [what, text, message] of manifestCases) {
    it(what, async () => {
      await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content: incr1() }], {
        manifestText: text,
      });
      const err = await loadError();
      expect(err.code).toBe('AOFQ_ERR_AOF_MANIFEST');
      expect(err.message).toBe(message);
    });
  }

  it('can load data discontinuously increasing sequence', async () => {
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: respRecords([SET('k1', 'v1')]) },
      { name: incrName(1), seq: 1, type: 'i', content: respRecords([SET('k2', 'v2')]) },
      { name: incrName(3), seq: 3, type: 'i', content: respRecords([SET('k3', 'v3')]) },
    ]);
    const { sink } = await load();
    expect(sink.commands()).toEqual(['SET k1 v1', 'SET k2 v2', 'SET k3 v3']);
    expect(sink.lsns()).toEqual([1, 2, 3]);
  });

  it('can load data when the manifest adds a new k-v', async () => {
    await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content: incr1() }], {
      manifestText: `file ${incrName(1)} seq 1 type i newkey newvalue\n`,
    });
    expect((await load()).sink.commands()).toEqual(['SET k1 v1']);
  });

  it('can handle appendfilename containing whitespace', async () => {
    const name = ' file seq \n\n.aof ';
    const c = testConfig(root, { appendfilename: name });
    const base = `${name}.1.base.aof`;
    const incr = `${name}.1.incr.aof`;
    const dir = aofDir(root);
    await fsp.mkdir(dir);
    await fsp.writeFile(
      path.join(dir, base),
      buildAofqFile({ kind: 'base', lsn: 0, batches: [[SET('a', '1')]] }),
    );
    await fsp.writeFile(
      path.join(dir, incr),
      buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('b', '2')]] }),
    );
    await writeManifestText(
      dir,
      'file " file seq \\n\\n.aof .1.base.aof" seq 1 type b\nfile " file seq \\n\\n.aof .1.incr.aof" seq 1 type i\n',
      name,
    );
    const { sink, result } = await load(new CollectingSink(), c);
    expect(sink.commands()).toEqual(['SET a 1', 'SET b 2']);
    expect(result.lastFile?.name).toBe(incr);
  });
});

describe('loadAof: Redis aof.tcl cases over Redis-style (headerless) files', () => {
  async function incrOnly(content: Buffer | string): Promise<string> {
    await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content }]);
    return incrFile(incrName(1));
  }

  it('Unfinished MULTI: loads with load-truncated yes, the MULTI is dropped and the file cut before it', async () => {
    const good = respRecords([SET('foo', 'hello')]);
    const file = await incrOnly(Buffer.concat([good, respRecords([['MULTI'], SET('bar', 'world')])]));
    const { sink, result } = await load();
    expect(sink.commands()).toEqual(['SET foo hello']);
    expect(result.truncated).toMatchObject({ file: incrName(1), offset: good.length });
    expect(await fileSize(file)).toBe(good.length);
  });

  it('Unfinished MULTI: refused with load-truncated no ("Unexpected end of file")', async () => {
    await incrOnly(respRecords([SET('foo', 'hello'), ['MULTI'], SET('bar', 'world')]));
    const err = await loadError(testConfig(root, { aofLoadTruncated: false }));
    expect(err.code).toBe('AOFQ_ERR_AOF_TRUNCATED');
    expect(err.message).toContain('Unexpected end of file reading the append only file');
    expect(err.message).toContain('aofq check-aof --fix');
  });

  it('MULTI/EXEC: records are delivered at EXEC, MULTI and EXEC dropped', async () => {
    await incrOnly(
      respRecords([['SELECT', '0'], ['MULTI'], SET('a', '1'), ['INCR', 'n'], ['EXEC'], SET('b', '2')]),
    );
    const { sink } = await load();
    expect(sink.commands()).toEqual(['SELECT 0', 'SET a 1', 'INCR n', 'SET b 2']);
    expect(sink.lsns()).toEqual([1, 2, 3, 4]);
  });

  it('Short read: loads, "foo" was incremented 5 times, and a new command appended later loads too', async () => {
    const five = respRecords(Array.from({ length: 5 }, () => ['INCR', 'foo']));
    const sixth = respRecords([['INCR', 'foo']]);
    const file = await incrOnly(Buffer.concat([five, sixth.subarray(0, sixth.length - 1)]));
    const first = await load();
    expect(first.sink.commands().filter((c) => c === 'INCR foo')).toHaveLength(5);
    expect(first.result.truncated).toEqual({
      file: incrName(1),
      offset: five.length,
      lostBytes: sixth.length - 1,
    });
    // "Append a new command after loading an incomplete AOF": the engine appends at the truncation point.
    expect(await fileSize(file)).toBe(five.length);
    await appendBytes(file, sixth);
    const second = await load();
    expect(second.sink.records).toHaveLength(6);
    expect(second.result.truncated).toBeNull();
  });

  it('Short read: refused with load-truncated no', async () => {
    const r = respRecords([SET('foo', 'hello')]);
    await incrOnly(r.subarray(0, r.length - 3));
    const err = await loadError(testConfig(root, { aofLoadTruncated: false }));
    expect(err.code).toBe('AOFQ_ERR_AOF_TRUNCATED');
    expect(err.params.offset).toBe(0);
  });

  it('Bad format: garbage in the middle is refused even with load-truncated yes', async () => {
    await incrOnly(
      Buffer.concat([
        respRecords([SET('foo', 'hello')]),
        Buffer.from('!!!'),
        respRecords([SET('foo', 'hello')]),
      ]),
    );
    const err = await loadError();
    expect(err.code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(err.message).toContain('Bad file format reading the append only file');
    expect(err.params.offset).toBe(respRecords([SET('foo', 'hello')]).length);
  });

  it('Successfully loads an AOF with timestamp annotations inside, including a trailing one', async () => {
    await incrOnly(
      `#TS:1628217470\r\n${respRecords([SET('foo1', 'bar1')])}#TS:1628217471\r\n#TS:1628217472\r\n${respRecords([SET('foo2', 'bar2')])}#TS:1628217473\r\n`,
    );
    expect((await load()).sink.commands()).toEqual(['SET foo1 bar1', 'SET foo2 bar2']);
  });

  it('refuses aofq annotations in a file without an aofq header, and an RDB preamble', async () => {
    await incrOnly(Buffer.concat([respRecords([SET('a', '1')]), buildBatch([SET('b', '2')], { lsn: 2 })]));
    expect((await loadError()).message).toContain('aofq annotation in a file without an aofq header');
    await fsp.writeFile(incrFile(incrName(1)), 'REDIS0011 binary');
    expect((await loadError()).message).toContain('RDB preamble');
  });
});

describe('loadAof: upgrade from a plain single-file AOF written by Redis', () => {
  it('moves appendonly.aof into the dir as the base (seq 1) and loads it', async () => {
    await fsp.writeFile(path.join(root, 'appendonly.aof'), respRecords([['SELECT', '0'], SET('k', 'v')]));
    const { sink, result } = await load();
    expect(result.imported).toBe(true);
    expect(sink.commands()).toEqual(['SELECT 0', 'SET k v']);
    expect(result.lastFile).toMatchObject({ name: 'appendonly.aof', type: 'b', header: null });
    expect(await fsp.readdir(root)).toEqual(['appendonlydir']);
    const m = await readManifest(realFs, aofDir(root), 'appendonly.aof');
    expect(m?.entries).toEqual([{ name: 'appendonly.aof', seq: 1, type: 'b', startLsn: 0 }]);
    expect(m?.nextSeq).toBe(2);
    // Loading again reads the same records from the dir.
    const again = await load();
    expect(again.sink.commands()).toEqual(['SELECT 0', 'SET k v']);
    expect(again.result.imported).toBe(false);
  });

  it('continues an interrupted upgrade (manifest written, file not moved yet)', async () => {
    await fsp.writeFile(path.join(root, 'appendonly.aof'), respRecords([SET('k', 'v')]));
    await writeAofDir(root, [{ name: 'appendonly.aof', seq: 1, type: 'b', content: '', missing: true }]);
    const { sink, result } = await load();
    expect(result.imported).toBe(true);
    expect(sink.commands()).toEqual(['SET k v']);
    expect(await fsp.readdir(root)).toEqual(['appendonlydir']);
  });

  it('when both the server dir and the aof dir hold the old AOF, the dir copy wins', async () => {
    await fsp.writeFile(path.join(root, 'appendonly.aof'), respRecords([SET('root', '1')]));
    await writeAofDir(root, [
      { name: 'appendonly.aof', seq: 1, type: 'b', content: respRecords([SET('dir', '1')]) },
    ]);
    expect((await load()).sink.commands()).toEqual(['SET dir 1']);
    expect((await fsp.readdir(root)).sort()).toEqual(['appendonly.aof', 'appendonlydir']);
  });

  it("can't load when the manifest names the old AOF and it exists nowhere", async () => {
    await writeAofDir(root, [{ name: 'appendonly.aof', seq: 1, type: 'b', content: '', missing: true }]);
    expect((await loadError()).code).toBe('AOFQ_ERR_AOF_MISSING_FILE');
  });

  it('refuses a plain file with an RDB preamble before touching anything', async () => {
    await fsp.writeFile(path.join(root, 'appendonly.aof'), 'REDIS0011xxxx');
    expect((await loadError()).code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(await fsp.readdir(root)).toEqual(['appendonly.aof']);
  });
});

describe('scanFile: chunk boundaries', () => {
  it('gives the same records and CRC verdicts for every chunk size', async () => {
    const content = buildAofqFile({
      kind: 'incr',
      lsn: 0,
      timestamps: true,
      batches: [
        [SET('a', 'x'.repeat(50)), SET('b', '2')],
        [SET('c', '3')],
        [
          ['HSET', 'h', 'f', 'v'],
          ['DEL', 'a'],
        ],
      ],
    });
    const file = path.join(root, 'f.aof');
    await fsp.writeFile(file, content);
    for (const chunkBytes of [1, 2, 3, 7, 16, 64, 1024]) {
      const seen: number[] = [];
      const scan = await scanFile({
        fs: realFs,
        filePath: file,
        name: 'f.aof',
        size: content.length,
        type: 'i',
        lsnBefore: 0,
        chunkBytes,
        onRecord: (_argv, lsn) => seen.push(lsn),
      });
      expect(scan.defect, `chunk ${chunkBytes}`).toBeNull();
      expect(seen).toEqual([1, 2, 3, 4, 5]);
      expect(scan.validUpTo).toBe(content.length);
      expect(scan.batches).toBe(3);
    }
  });
});
