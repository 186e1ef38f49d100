import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { realFs } from '../../src/aof/fs.js';
import {
  baseEntry,
  historyEntries,
  incrEntries,
  loadOrder,
  type Manifest,
  nextSequence,
  parseManifest,
  persistManifest,
  quoteArg,
  readManifest,
  serializeManifest,
  splitArgs,
} from '../../src/aof/manifest.js';
import { isAofqError } from '../../src/errors/index.js';
import { makeTempDir, removeDir } from '../helpers/aof-fixtures.js';

function reasonOf(text: string): string {
  try {
    parseManifest(text);
  } catch (err) {
    if (isAofqError(err, 'AOFQ_ERR_AOF_MANIFEST')) return String(err.params.reason);
    throw err;
  }
  throw new Error('parseManifest accepted the manifest');
}

describe('parseManifest: Redis syntax', () => {
  it('parses base, history and incr entries with Redis names', () => {
    const m = parseManifest(
      'file appendonly.aof.1.base.rdb seq 1 type b\n' +
        'file appendonly.aof.1.incr.aof seq 1 type h\n' +
        'file appendonly.aof.2.incr.aof seq 2 type i\n',
    );
    expect(m.entries).toEqual([
      { name: 'appendonly.aof.1.base.rdb', seq: 1, type: 'b' },
      { name: 'appendonly.aof.1.incr.aof', seq: 1, type: 'h' },
      { name: 'appendonly.aof.2.incr.aof', seq: 2, type: 'i' },
    ]);
    expect(baseEntry(m)?.name).toBe('appendonly.aof.1.base.rdb');
    expect(historyEntries(m)).toHaveLength(1);
    expect(incrEntries(m).map((e) => e.seq)).toEqual([2]);
    expect(loadOrder(m).map((e) => e.type)).toEqual(['b', 'i']);
  });

  it('keeps unknown key/value pairs (Redis forward compatibility) and reads startlsn', () => {
    const m = parseManifest('file a.1.incr.aof seq 1 type i newkey newvalue startlsn 42\n');
    expect(m.entries[0]).toEqual({
      name: 'a.1.incr.aof',
      seq: 1,
      type: 'i',
      startLsn: 42,
      extra: { newkey: 'newvalue' },
    });
  });

  it('keys are case-insensitive, as in Redis', () => {
    expect(parseManifest('FILE a seq 1 TYPE b\n').entries[0]?.name).toBe('a');
  });

  it('can load data discontinuously increasing sequence (incr 1 and 3)', () => {
    const m = parseManifest('file a.1.incr.aof seq 1 type i\nfile a.3.incr.aof seq 3 type i\n');
    expect(m.entries.map((e) => e.seq)).toEqual([1, 3]);
  });

  it('skips comment lines and reads our #aofq-manifest line', () => {
    const m = parseManifest(
      '# a comment\n#aofq-manifest v=1 next-seq=9 base-size=100 repl-id=abc123\nfile a seq 1 type b\n',
    );
    expect(m.formatVersion).toBe(1);
    expect(m.nextSeq).toBe(9);
    expect(m.baseSize).toBe(100);
    expect(m.replId).toBe('abc123');
  });

  const cases: [string, string, string][] = [
    ['blank line', 'file a seq 1 type b\n\n', 'Invalid AOF manifest file format'],
    ['missing key (filx)', 'filx a seq 1 type b\n', 'Invalid AOF manifest file format'],
    ['line too short', 'file a seq 1\n', 'Invalid AOF manifest file format'],
    ['odd parameter', 'file a seq 1 type i newkey\n', 'Invalid AOF manifest file format'],
    ['seq 0', 'file a seq 0 type i\n', 'Invalid AOF manifest file format'],
    ['non-numeric seq', 'file a seq x type i\n', 'Invalid AOF manifest file format'],
    ['format error line', '!!!\n', 'Invalid AOF manifest file format'],
    ['unbalanced quote', 'file "a seq 1 type b\n', 'Invalid AOF manifest file format'],
    [
      'line too long',
      `file ${'a'.repeat(1100)} seq 1 type b\n`,
      'The AOF manifest file contains too long line',
    ],
    ['a path', 'file dir/a seq 1 type b\n', "File can't be a path, just a filename"],
    ['duplicate base', 'file a seq 1 type b\nfile b seq 2 type b\n', 'Found duplicate base file information'],
    [
      'non-monotonic sequence',
      'file a seq 2 type i\nfile b seq 1 type i\n',
      'Found a non-monotonic sequence number',
    ],
    [
      'equal incr sequence',
      'file a seq 2 type i\nfile b seq 2 type i\n',
      'Found a non-monotonic sequence number',
    ],
    ['unknown type', 'file a seq 1 type x\n', 'Unknown AOF file type'],
    ['empty manifest', '', 'Found an empty AOF manifest'],
    ['only comments', '# nothing\n', 'Found an empty AOF manifest'],
    ['only history', 'file a seq 1 type h\n', 'Found an empty AOF manifest'],
    ['final line without newline', 'file a seq 1 type b', 'The AOF manifest file contains too long line'],
    ['duplicate file name', 'file a seq 1 type b\nfile a seq 2 type i\n', 'Found duplicate AOF file name a'],
  ];
  for (const [what, text, reason] of cases) {
    it(`can't load when ${what}`, () => {
      expect(reasonOf(text)).toContain(reason);
    });
  }

  it('refuses a newer aofq manifest version', () => {
    expect(reasonOf('#aofq-manifest v=99\nfile a seq 1 type b\n')).toContain(
      'Unsupported aofq manifest version 99',
    );
  });

  it('the too-long limit can be set', () => {
    expect(() => parseManifest('file abc seq 1 type b\n', 10)).toThrow(/too long line/);
  });
});

describe('quoting, as sdscatrepr / sdssplitargs', () => {
  it('round-trips file names with whitespace, quotes, newlines and non-ASCII bytes', () => {
    for (const name of [
      ' file seq \n\n.aof .2.base.rdb',
      'a"b',
      "it's",
      'tab\there',
      'ünï',
      'back\\slash',
      'x\x01y',
    ]) {
      const quoted = quoteArg(name);
      expect(splitArgs(`file ${quoted} seq 1`)).toEqual(['file', name, 'seq', '1']);
    }
  });

  it('quotes like Redis: the whitespace example from Redis tests', () => {
    expect(quoteArg(' file seq \n\n.aof .2.base.rdb')).toBe('" file seq \\n\\n.aof .2.base.rdb"');
    expect(quoteArg('plain.aof')).toBe('plain.aof');
    expect(quoteArg('é')).toBe('"\\xc3\\xa9"');
  });

  it('parses single quotes and refuses a closing quote glued to text', () => {
    expect(splitArgs("'a b' c")).toEqual(['a b', 'c']);
    expect(splitArgs('"a"b')).toBeNull();
    expect(splitArgs("'a")).toBeNull();
  });

  it('a manifest with a whitespace name round-trips', () => {
    const m: Manifest = {
      entries: [
        { name: ' file seq \n\n.aof .1.base.aof', seq: 1, type: 'b', startLsn: 0 },
        { name: ' file seq \n\n.aof .1.incr.aof', seq: 2, type: 'i', startLsn: 0 },
      ],
      nextSeq: 3,
    };
    expect(parseManifest(serializeManifest(m))).toEqual({ ...m, formatVersion: 1 });
  });
});

describe('serializeManifest', () => {
  it('writes our line first, then base, history, incr in Redis order', () => {
    const text = serializeManifest({
      entries: [
        { name: 'a.2.incr.aof', seq: 2, type: 'i', startLsn: 10 },
        { name: 'a.1.incr.aof', seq: 1, type: 'h' },
        { name: 'a.3.base.aof', seq: 3, type: 'b', startLsn: 10, extra: { k: 'v w' } },
      ],
      nextSeq: 4,
      baseSize: 77,
      replId: 'ff00',
    });
    expect(text).toBe(
      '#aofq-manifest v=1 next-seq=4 base-size=77 repl-id=ff00\n' +
        'file a.3.base.aof seq 3 type b startlsn 10 k "v w"\n' +
        'file a.1.incr.aof seq 1 type h\n' +
        'file a.2.incr.aof seq 2 type i startlsn 10\n',
    );
    const back = parseManifest(text);
    expect(back.entries.map((e) => e.name)).toEqual(['a.3.base.aof', 'a.1.incr.aof', 'a.2.incr.aof']);
    expect(back.entries[0]?.extra).toEqual({ k: 'v w' });
  });

  it('nextSequence never reuses a number', () => {
    expect(nextSequence({ entries: [{ name: 'a', seq: 5, type: 'i' }] })).toBe(6);
    expect(nextSequence({ entries: [{ name: 'a', seq: 5, type: 'i' }], nextSeq: 9 })).toBe(9);
    expect(nextSequence({ entries: [] })).toBe(1);
  });

  it('asserts on a path as a name (a bug, not input)', () => {
    expect(() => serializeManifest({ entries: [{ name: 'x/y', seq: 1, type: 'b' }] })).toThrow(
      /plain file name/,
    );
  });
});

describe('persistManifest / readManifest', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  it('returns null when there is no manifest', async () => {
    expect(await readManifest(realFs, dir, 'appendonly.aof')).toBeNull();
  });

  it('writes atomically (no temp file left) and reads back', async () => {
    const m: Manifest = {
      entries: [{ name: 'appendonly.aof.1.base.aof', seq: 1, type: 'b', startLsn: 0 }],
      nextSeq: 2,
    };
    await persistManifest(realFs, dir, 'appendonly.aof', m);
    expect(await fsp.readdir(dir)).toEqual(['appendonly.aof.manifest']);
    expect(await readManifest(realFs, dir, 'appendonly.aof')).toEqual({ ...m, formatVersion: 1 });
    // Overwrite: the new content replaces the old one whole.
    const m2: Manifest = {
      ...m,
      entries: [...m.entries, { name: 'appendonly.aof.2.incr.aof', seq: 2, type: 'i' }],
      nextSeq: 3,
    };
    await persistManifest(realFs, dir, 'appendonly.aof', m2);
    expect((await readManifest(realFs, dir, 'appendonly.aof'))?.entries).toHaveLength(2);
  });

  it('reports a bad manifest on disk with Redis messages', async () => {
    await fsp.writeFile(path.join(dir, 'appendonly.aof.manifest'), 'file a seq 1 type b\n\n');
    await expect(readManifest(realFs, dir, 'appendonly.aof')).rejects.toMatchObject({
      code: 'AOFQ_ERR_AOF_MANIFEST',
      message: 'Invalid AOF manifest file format',
    });
  });

  it('refuses a manifest that is not UTF-8', async () => {
    await fsp.writeFile(path.join(dir, 'appendonly.aof.manifest'), Buffer.from([0x66, 0xff, 0x0a]));
    await expect(readManifest(realFs, dir, 'appendonly.aof')).rejects.toMatchObject({
      code: 'AOFQ_ERR_AOF_MANIFEST',
    });
  });
});
