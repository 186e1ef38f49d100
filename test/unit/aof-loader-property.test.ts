/**
 * Properties of the loader over random logs: a log cut at any byte loads as
 * the longest prefix of whole batches (and is cut there); a byte flipped
 * anywhere is either refused or loses only what follows the flip; whatever
 * the damage, what was delivered is a prefix of what was written.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realFs } from '../../src/aof/fs.js';
import { loadAof } from '../../src/aof/loader.js';
import { isAofqError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/util/logger.js';
import {
  aofDir,
  buildAofqFile,
  CollectingSink,
  incrName,
  testConfig,
  writeAofDir,
} from '../helpers/aof-fixtures.js';

let root: string;
beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-prop-'));
});
afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const argArb = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a).toString('latin1')),
);
const recordArb = fc.tuple(
  fc.constantFrom('SET', 'HSET', 'DEL', 'INCR'),
  fc.array(argArb, { minLength: 1, maxLength: 4 }),
);
const logArb = fc.array(fc.array(recordArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 });

type Log = [string, string[]][][];

function records(log: Log): string[][] {
  return log.flat().map(([name, args]) => [name, ...args]);
}

/** End offsets of each batch in the file built from `log`. */
function batchEnds(log: Log): { content: Buffer; ends: number[]; counts: number[] } {
  const ends: number[] = [];
  const counts: number[] = [];
  let n = 0;
  for (let i = 1; i <= log.length; i++) {
    const part = buildAofqFile({
      kind: 'incr',
      lsn: 0,
      batches: log.slice(0, i).map((b) => b.map(([c, a]) => [c, ...a])),
    });
    ends.push(part.length);
    n += (log[i - 1] as unknown[]).length;
    counts.push(n);
  }
  const content = buildAofqFile({
    kind: 'incr',
    lsn: 0,
    batches: log.map((b) => b.map(([c, a]) => [c, ...a])),
  });
  return { content, ends, counts };
}

let run = 0;
async function writeLog(content: Buffer): Promise<string> {
  const dir = path.join(root, `r${run++}`);
  await writeAofDir(dir, [{ name: incrName(1), seq: 1, type: 'i', content }]);
  return dir;
}

describe('loader properties', () => {
  it('a log cut at any byte loads the longest prefix of whole batches and is cut there', async () => {
    await fc.assert(
      fc.asyncProperty(logArb, fc.double({ min: 0, max: 1, noNaN: true }), async (log, where) => {
        const { content, ends, counts } = batchEnds(log);
        // Cuts inside the file header: the loader leaves a file without records, and the engine
        // writes its header again (aof-engine.test.ts, every cut point).
        const header = buildAofqFile({ kind: 'incr', lsn: 0, batches: [] }).length;
        const cutAt = header + Math.floor(where * (content.length - header));
        const dir = await writeLog(content.subarray(0, cutAt));
        const sink = new CollectingSink();
        const result = await loadAof(testConfig(dir), realFs, sink, silentLogger);
        let whole = -1;
        for (let i = 0; i < ends.length; i++) if ((ends[i] as number) <= cutAt) whole = i;
        const expectedRecords = whole >= 0 ? (counts[whole] as number) : 0;
        const all = records(log);
        expect(sink.records.map((r) => r.argv)).toEqual(
          all.slice(0, expectedRecords).map((r) => r.map((a) => Buffer.from(a, 'utf8').toString('utf8'))),
        );
        expect(sink.lsns()).toEqual(Array.from({ length: expectedRecords }, (_v, i) => i + 1));
        const size = (await fsp.stat(path.join(aofDir(dir), incrName(1)))).size;
        if (cutAt === content.length || (whole >= 0 && ends[whole] === cutAt)) {
          expect(result.truncated).toBeNull();
        } else {
          const expectedSize = whole >= 0 ? (ends[whole] as number) : cutAt >= header ? header : 0;
          expect(size).toBe(expectedSize);
        }
      }),
      { numRuns: 120 },
    );
  });

  it('a flipped byte is refused or loses only the batches from the damaged one on', async () => {
    await fc.assert(
      fc.asyncProperty(logArb, fc.double({ min: 0, max: 1, noNaN: true }), async (log, where) => {
        const { content, ends, counts } = batchEnds(log);
        const at = Math.min(content.length - 1, Math.floor(where * content.length));
        const damaged = Buffer.from(content);
        damaged[at] = (damaged[at] as number) ^ 0x5a;
        const dir = await writeLog(damaged);
        const sink = new CollectingSink();
        try {
          await loadAof(testConfig(dir), realFs, sink, silentLogger);
        } catch (err) {
          expect(isAofqError(err)).toBe(true);
          return;
        }
        // Loaded: only whole batches that end before the flipped byte.
        let before = 0;
        for (let i = 0; i < ends.length; i++) if ((ends[i] as number) <= at) before = counts[i] as number;
        expect(sink.records.length).toBeLessThanOrEqual(before);
        const all = records(log);
        expect(sink.records.map((r) => r.argv)).toEqual(all.slice(0, sink.records.length));
      }),
      { numRuns: 120 },
    );
  });
});
