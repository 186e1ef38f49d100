/**
 * Torn tails: every kind of damage at the end of the last file is cut off
 * (aof-load-truncated yes) or refused as truncated (no); the same damage in an
 * earlier file, or followed by a valid batch, is always refused.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { realFs } from '../../src/aof/fs.js';
import { loadAof } from '../../src/aof/loader.js';
import { type AofqError, isAofqError } from '../../src/errors/index.js';
import type { Logger } from '../../src/util/logger.js';
import { silentLogger } from '../../src/util/logger.js';
import {
  aofDir,
  baseName,
  buildAofqFile,
  buildBatch,
  CollectingSink,
  fileSize,
  flipByte,
  incrName,
  testConfig,
  writeAofDir,
} from '../helpers/aof-fixtures.js';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-torn-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const SET = (k: string, v: string) => ['SET', k, v];
/** incr lsn 0: batch [1,2] and batch [3]. */
const goodIncr = () =>
  buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('a', '1'), SET('a', '2')], [SET('a', '3')]] });
const nextBatch = () => buildBatch([SET('b', '4'), SET('b', '5')], { lsn: 4 });

interface Damage {
  what: string;
  /** Bytes appended after the valid content. */
  tail: () => Buffer;
  kind: 'eof' | 'format';
}

const damages: Damage[] = [
  { what: 'a partial annotation line', tail: () => nextBatch().subarray(0, 20), kind: 'eof' },
  { what: 'a partial record', tail: () => nextBatch().subarray(0, nextBatch().length - 7), kind: 'eof' },
  {
    what: 'a batch shorter than its len at EOF',
    tail: () => buildBatch([SET('b', '4')], { lsn: 4, bytes: 60 }),
    kind: 'eof',
  },
  {
    what: 'a CRC mismatch',
    tail: () => buildBatch([SET('b', '4')], { lsn: 4, crc: 0x12345678 }),
    kind: 'format',
  },
  {
    what: 'a record count that does not match',
    tail: () => buildBatch([SET('b', '4'), SET('b', '5')], { lsn: 4, count: 3 }),
    kind: 'format',
  },
  { what: 'a zero-filled tail', tail: () => Buffer.alloc(4096), kind: 'eof' },
  {
    what: 'a zero-filled tail after a partial batch',
    tail: () => Buffer.concat([nextBatch().subarray(0, 30), Buffer.alloc(100)]),
    kind: 'eof',
  },
  { what: 'garbage', tail: () => Buffer.from('!!!garbage\r\n'), kind: 'format' },
  { what: 'a record outside a batch', tail: () => Buffer.from('*1\r\n$4\r\nPING\r\n'), kind: 'format' },
];

function warnings(): { logger: Logger; seen: { obj: object; msg?: string }[] } {
  const seen: { obj: object; msg?: string }[] = [];
  return {
    logger: { ...silentLogger, warn: (obj, msg) => seen.push(msg === undefined ? { obj } : { obj, msg }) },
    seen,
  };
}

async function loadError(loadTruncated: boolean): Promise<AofqError> {
  try {
    await loadAof(
      testConfig(root, { aofLoadTruncated: loadTruncated }),
      realFs,
      new CollectingSink(),
      silentLogger,
    );
  } catch (err) {
    if (isAofqError(err)) return err;
    throw err;
  }
  throw new Error('the load succeeded');
}

describe('torn tail in the last file', () => {
  for (const d of damages) {
    it(`${d.what}: cut at the end of the last valid batch with load-truncated yes`, async () => {
      const good = goodIncr();
      await writeAofDir(root, [
        {
          name: baseName(1),
          seq: 1,
          type: 'b',
          content: buildAofqFile({ kind: 'base', lsn: 0, batches: [] }),
        },
        { name: incrName(1), seq: 1, type: 'i', content: Buffer.concat([good, d.tail()]) },
      ]);
      const { logger, seen } = warnings();
      const sink = new CollectingSink();
      const result = await loadAof(testConfig(root), realFs, sink, logger);
      expect(sink.lsns()).toEqual([1, 2, 3]);
      expect(result.lastLsn).toBe(3);
      expect(result.truncated).toEqual({
        file: incrName(1),
        offset: good.length,
        lostBytes: d.tail().length,
      });
      expect(await fileSize(path.join(aofDir(root), incrName(1)))).toBe(good.length);
      expect(result.lastFile?.size).toBe(good.length);
      expect(seen).toHaveLength(1);
      expect(seen[0]?.obj).toMatchObject({ file: incrName(1), offset: good.length });
    });

    it(`${d.what}: refused with load-truncated no, naming file, offset and repair`, async () => {
      const good = goodIncr();
      await writeAofDir(root, [
        { name: incrName(1), seq: 1, type: 'i', content: Buffer.concat([good, d.tail()]) },
      ]);
      const err = await loadError(false);
      expect(err.code).toBe('AOFQ_ERR_AOF_TRUNCATED');
      expect(err.params).toMatchObject({ file: incrName(1), offset: good.length });
      expect(err.message).toContain(
        `aofq check-aof --fix ${path.join(aofDir(root), 'appendonly.aof.manifest')}`,
      );
      // Nothing was cut.
      expect(await fileSize(path.join(aofDir(root), incrName(1)))).toBe(good.length + d.tail().length);
    });

    it(`${d.what}: refused in a file that is not the last one`, async () => {
      const good = goodIncr();
      await writeAofDir(root, [
        { name: incrName(1), seq: 1, type: 'i', content: Buffer.concat([good, d.tail()]) },
        {
          name: incrName(2),
          seq: 2,
          type: 'i',
          content: buildAofqFile({ kind: 'incr', lsn: 3, batches: [[SET('c', '1')]] }),
        },
      ]);
      const err = await loadError(true);
      expect(err.code).toBe(d.kind === 'eof' ? 'AOFQ_ERR_AOF_TRUNCATED' : 'AOFQ_ERR_AOF_CORRUPT');
      expect(err.params).toMatchObject({ file: incrName(1), offset: good.length });
      expect(await fileSize(path.join(aofDir(root), incrName(1)))).toBe(good.length + d.tail().length);
    });
  }

  it('a torn header leaves an empty last file', async () => {
    const header = buildAofqFile({ kind: 'incr', lsn: 0, batches: [] });
    await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content: header.subarray(0, 10) }]);
    const result = await loadAof(testConfig(root), realFs, new CollectingSink(), silentLogger);
    expect(result.truncated).toEqual({ file: incrName(1), offset: 0, lostBytes: 10 });
    expect(result.lastFile).toMatchObject({ size: 0, header: null });
  });
});

describe('damage in the middle', () => {
  it('a CRC flip in a batch followed by a valid batch is refused, naming file, offset, LSN and repair', async () => {
    const first = buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('a', '1')]] });
    const second = buildBatch([SET('a', 'hello'), SET('b', '2')], { lsn: 2 });
    const third = buildBatch([SET('c', '3')], { lsn: 4 });
    await writeAofDir(root, [
      { name: incrName(1), seq: 1, type: 'i', content: Buffer.concat([first, second, third]) },
    ]);
    // Flip a byte of 'hello' in the second batch.
    await flipByte(path.join(aofDir(root), incrName(1)), first.length + second.indexOf('hello'));
    const err = await loadError(true);
    expect(err.code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(err.params).toMatchObject({ file: incrName(1), offset: first.length, lsn: 2 });
    expect(err.message).toContain('CRC mismatch');
    expect(err.message).toContain(`at offset ${first.length}`);
    expect(err.message).toContain('aofq check-aof --fix');
    expect(err.message).toContain(`a valid batch follows at offset ${first.length + second.length}`);
  });

  it('garbage followed by a valid batch is refused', async () => {
    const good = goodIncr();
    await writeAofDir(root, [
      {
        name: incrName(1),
        seq: 1,
        type: 'i',
        content: Buffer.concat([good, Buffer.alloc(64), Buffer.from('\r\n'), nextBatch()]),
      },
    ]);
    const err = await loadError(true);
    expect(err.code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(err.params.offset).toBe(good.length);
  });

  it('a CRC flip in the base is refused even though later files are fine', async () => {
    const base = buildAofqFile({ kind: 'base', lsn: 0, batches: [[SET('k', 'value')]] });
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: base },
      { name: incrName(1), seq: 1, type: 'i', content: goodIncr() },
    ]);
    await flipByte(path.join(aofDir(root), baseName(1)), base.indexOf('value'));
    const err = await loadError(true);
    expect(err.code).toBe('AOFQ_ERR_AOF_CORRUPT');
    expect(err.params.file).toBe(baseName(1));
  });
});
