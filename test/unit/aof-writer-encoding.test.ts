/**
 * Property test of the writer's encoding, arena and batching, on an in-memory
 * file: any records (binary, empty, UTF-8, large), appended over any number of
 * turns, with any batch cap, arena chunk size and short writes, read back by
 * the loader's scanner as exactly those records with consecutive LSNs from the
 * header's, every batch's CRC and count verified, and no batch of several
 * records over the cap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  batchAnnotationBytes,
  encodeBatchAnnotation,
  encodeFileHeader,
  parseAnnotation,
  writeBatchAnnotation,
} from '../../src/aof/format.js';
import type { AofFile, FsLayer } from '../../src/aof/fs.js';
import { scanFile } from '../../src/aof/loader.js';
import { AofWriter } from '../../src/aof/writer.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';

class MemoryFile implements AofFile {
  bytes: Buffer;
  writes = 0;
  constructor(
    initial: Buffer,
    private readonly maxWrite: number,
  ) {
    this.bytes = Buffer.from(initial);
  }
  async write(buf: Buffer): Promise<number> {
    return this.writeSync(buf);
  }
  writeSync(buf: Buffer): number {
    this.writes++;
    const n = Math.min(buf.length, this.maxWrite);
    this.bytes = Buffer.concat([this.bytes, buf.subarray(0, n)]);
    return n;
  }
  truncateSync(length: number): void {
    this.bytes = this.bytes.subarray(0, length);
  }
  async datasync(): Promise<void> {}
  async sync(): Promise<void> {}
  async truncate(length: number): Promise<void> {
    this.bytes = this.bytes.subarray(0, length);
  }
  async size(): Promise<number> {
    return this.bytes.length;
  }
  async close(): Promise<void> {}
}

function memoryFs(bytes: Buffer): FsLayer {
  const unsupported = (): never => {
    throw new Error('not supported in this test');
  };
  return {
    open: unsupported,
    readFile: async () => bytes,
    async *readChunks(_path: string, chunkBytes: number, start = 0) {
      for (let at = start; at < bytes.length; at += chunkBytes) yield bytes.subarray(at, at + chunkBytes);
    },
    size: async () => bytes.length,
    rename: unsupported,
    unlink: unsupported,
    mkdirp: unsupported,
    readdir: unsupported,
    truncate: unsupported,
    fsyncDir: unsupported,
    freeBytes: unsupported,
  };
}

/** The records of an in-memory AOF, as the loader's scanner reads them back. */
async function scanBack(bytes: Buffer, startLsn: number) {
  const got: Array<{ argv: Buffer[]; lsn: number }> = [];
  const result = await scanFile({
    fs: memoryFs(bytes),
    filePath: 'mem.aof',
    name: 'mem.aof',
    size: bytes.length,
    type: 'i',
    lsnBefore: startLsn,
    onRecord: (argv, lsn) => got.push({ argv: argv.map((a) => Buffer.from(a)), lsn }),
    chunkBytes: 1024,
  });
  return { result, got };
}

const argArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', '\r\n', '*1\r\n$0\r\n\r\n', '#aofq b lsn=1'),
  fc.integer({ min: 200, max: 3000 }).map((n) => Buffer.alloc(n, 0x78)),
  // Around the writer's short-argument cut (64): ASCII and not, one-byte and not.
  fc.string({ unit: 'grapheme', minLength: 28, maxLength: 300 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 28, maxLength: 300 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 60, maxLength: 70 }),
  // The native path writes the text where a length of n's digit count leaves it and moves it up
  // a byte when the UTF-8 count has one digit more: n in 4..9, 34..99, 334..999 with multi-byte
  // units. Any code unit, lone surrogates included (UTF-8 replaces them with U+FFFD, as
  // Buffer.from does).
  fc.string({ unit: 'binary', minLength: 30, maxLength: 40 }),
  fc.string({ unit: 'binary', minLength: 95, maxLength: 110 }),
  fc.string({ unit: 'binary', minLength: 330, maxLength: 340 }),
  fc.string({
    unit: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
    minLength: 1,
    maxLength: 60,
  }),
  fc.uint8Array({ minLength: 28, maxLength: 40 }).map((a) => Buffer.from(a)),
  // Numbers are written as their decimal text: safe integers by the writer's own digits, others by String().
  fc.oneof(fc.nat(), fc.maxSafeNat(), fc.integer({ min: -1_000_000, max: -1 }), fc.double()),
  // Numbers of ten digits or more go through the writer's memo of recent encodings (4 slots):
  // a pool of eight repeats them, hits and evictions both, beside any other in the range.
  // Neighbours (1 apart, 10 apart) catch a memo that matches on anything less than the value.
  fc.constantFrom(
    999_999_999,
    1_000_000_000,
    9_999_999_999,
    10_000_000_000,
    1_764_620_000_000,
    1_764_620_000_001,
    1_764_620_000_010,
    1_764_620_030_000,
  ),
  fc.integer({ min: 1_000_000_000, max: Number.MAX_SAFE_INTEGER }),
);
// Up to 12 arguments: the array's length line is written one way below 10 and another from 10.
const recordArb = fc.array(argArb, { minLength: 1, maxLength: 12 });

describe('AofWriter encoding (property)', () => {
  it('reads back exactly what was appended, in batches the scanner verifies', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(recordArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 64, max: 8192 }),
        fc.integer({ min: 512, max: 4096 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.constantFrom('always', 'everysec', 'no') as fc.Arbitrary<'always' | 'everysec' | 'no'>,
        fc.boolean(),
        async (turns, startLsn, maxBatchBytes, arenaChunkBytes, maxWrite, policy, timestamps) => {
          const header = encodeFileHeader({ kind: 'incr', lsn: startLsn });
          const file = new MemoryFile(header, maxWrite);
          const clock = new ManualClock();
          const writer = new AofWriter({
            file,
            fileName: 'mem.aof',
            size: header.length,
            lastLsn: startLsn,
            policy,
            timestamps,
            clock,
            logger: silentLogger,
            timing: { maxBatchBytes, arenaChunkBytes },
          });
          const expected: Buffer[][] = [];
          for (const turn of turns) {
            let last = 0;
            for (const record of turn) {
              last = writer.append(record);
              expected.push(
                record.map((a) =>
                  typeof a === 'string'
                    ? Buffer.from(a, 'utf8')
                    : typeof a === 'number'
                      ? Buffer.from(String(a), 'latin1')
                      : a,
                ),
              );
            }
            expect(last).toBe(startLsn + expected.length);
            await writer.waitWritten(last);
            clock.advance(700);
          }
          await writer.close();
          const { result, got } = await scanBack(file.bytes, startLsn);
          expect(result.defect).toBeNull();
          expect(result.header).toEqual({ kind: 'incr', lsn: startLsn });
          expect(got.map((g) => g.lsn)).toEqual(expected.map((_, i) => startLsn + i + 1));
          for (let i = 0; i < expected.length; i++) {
            const want = expected[i] as Buffer[];
            const have = got[i]?.argv as Buffer[];
            expect(have.length).toBe(want.length);
            for (let j = 0; j < want.length; j++) expect(have[j]?.equals(want[j] as Buffer)).toBe(true);
          }
          // Never more batches than turns plus the cuts the cap forces.
          expect(result.batches).toBeGreaterThanOrEqual(turns.length);
          // The cap: a batch's records stay within maxBatchBytes, unless one record alone is larger.
          const annotations = [
            ...file.bytes
              .toString('latin1')
              .matchAll(/(?:^|\n)#aofq b lsn=\d+ n=(\d+) len=(\d+) crc=[0-9a-f]{8} ms=\d+\r\n/g),
          ];
          expect(annotations).toHaveLength(result.batches);
          for (const [, count, len] of annotations) {
            if (Number(count) > 1) expect(Number(len)).toBeLessThanOrEqual(maxBatchBytes);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  // The writer encodes a record without counting it first when the open batch has room for it
  // as if every argument were short; a long argument then checks that it leaves room for the
  // arguments after it. Here one takes 3 bytes a character and leaves too little for the ten
  // 13-digit numbers after it: the record must start over with its exact bound (and move to a
  // fresh chunk), not run past the chunk's end.
  it('starts a record over with its exact bound when a long argument leaves no room for the rest', async () => {
    const chunk = 65_536;
    const header = encodeFileHeader({ kind: 'incr', lsn: 0 });
    const file = new MemoryFile(header, Number.MAX_SAFE_INTEGER);
    const writer = new AofWriter({
      file,
      fileName: 'mem.aof',
      size: header.length,
      lastLsn: 0,
      policy: 'no',
      timestamps: false,
      clock: new ManualClock(),
      logger: silentLogger,
      timing: { maxBatchBytes: 4 * chunk, arenaChunkBytes: chunk },
    });
    const first = [Buffer.from('X')];
    // After the batch's 128-byte prefix, the first record (11 bytes) and `*11\r\n`, the string's
    // 3 * n bytes and its header end 12 bytes before the chunk's end; the numbers need 200.
    const euros = '\u20ac'.repeat(21_790);
    const numbers = Array.from({ length: 10 }, (_, i) => 1_764_620_000_000 + i);
    const second = [euros, ...numbers];
    writer.append(first);
    const lsn = writer.append(second);
    expect(lsn).toBe(2);
    await writer.waitWritten(lsn);
    await writer.close();
    const { result, got } = await scanBack(file.bytes, 0);
    expect(result.defect).toBeNull();
    expect(got.map((g) => g.lsn)).toEqual([1, 2]);
    expect(got[0]?.argv).toEqual(first);
    const argv = got[1]?.argv ?? [];
    expect(argv[0]?.equals(Buffer.from(euros, 'utf8'))).toBe(true);
    expect(argv.slice(1).map((a) => Number(a.toString('latin1')))).toEqual(numbers);
  });
});

describe('batch annotation line', () => {
  it('is the documented text for any values, written in place at any offset, and parses back', () => {
    const safe = fc.oneof(
      fc.constantFrom(0, 9, 10, 99, 100, 999_999_999, 10 ** 15, Number.MAX_SAFE_INTEGER),
      fc.nat(),
    );
    const annotation = fc.record({
      lsn: safe,
      count: fc.oneof(fc.constantFrom(1, 9, 10, 4_294_967_295), fc.integer({ min: 1, max: 1_000_000 })),
      bytes: safe,
      crc: fc.oneof(
        fc.constantFrom(0, 0xf, 0x10, 0xffffffff, 0x80000000),
        fc.integer({ min: 0, max: 0xffffffff }),
      ),
      ms: fc.oneof(fc.constantFrom(0, 1_796_189_929_643, Number.MAX_SAFE_INTEGER), fc.nat()),
    });
    fc.assert(
      fc.property(annotation, fc.nat({ max: 40 }), (a, at) => {
        const crc = a.crc.toString(16).padStart(8, '0');
        const text = `#aofq b lsn=${a.lsn} n=${a.count} len=${a.bytes} crc=${crc} ms=${a.ms}\r\n`;
        expect(batchAnnotationBytes(a)).toBe(text.length);
        expect(encodeBatchAnnotation(a).toString('latin1')).toBe(text);
        const buf = Buffer.alloc(at + text.length + 8, 0x2e);
        expect(writeBatchAnnotation(buf, at, a)).toBe(at + text.length);
        expect(buf.toString('latin1', at, at + text.length)).toBe(text);
        expect(buf.subarray(0, at).every((b) => b === 0x2e)).toBe(true);
        expect(buf.subarray(at + text.length).every((b) => b === 0x2e)).toBe(true);
        expect(parseAnnotation(text.slice(1, -2))).toEqual({ type: 'batch', batch: a });
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses to write past the end of its buffer', () => {
    const a = { lsn: 1, count: 1, bytes: 10, crc: 0, ms: 5 };
    expect(() => writeBatchAnnotation(Buffer.alloc(batchAnnotationBytes(a) - 1), 0, a)).toThrow(/fits/);
  });
});

describe('AofWriter arena chunks', () => {
  // Under everysec a second of writes is retained until its fdatasync, then its chunks are reused
  // (writer.ts, recycle()). A chunk reused while a batch in it was still unwritten or retained
  // would overwrite that batch's bytes: the read-back below would differ. The spares are trimmed
  // to what the writer took, and all given back once it is idle.
  it('reuses chunks once an fdatasync releases their batches, byte for byte, and gives spares back when idle', async () => {
    const header = encodeFileHeader({ kind: 'incr', lsn: 0 });
    const file = new MemoryFile(header, Number.MAX_SAFE_INTEGER);
    let syncs = 0;
    file.datasync = async () => {
      syncs++;
    };
    const chunk = 1024;
    const writer = new AofWriter({
      file,
      fileName: 'mem.aof',
      size: header.length,
      lastLsn: 0,
      policy: 'everysec',
      timestamps: false,
      clock: new ManualClock(),
      logger: silentLogger,
      timing: { arenaChunkBytes: chunk, everysecIntervalMs: 1, arenaSpareTrimMs: 50 },
    });
    const expected: string[] = [];
    for (let turn = 0; turn < 400; turn++) {
      let last = 0;
      for (let i = 0; i < 3; i++) {
        const value = `${turn}:${i}:${'v'.repeat((turn * 7 + i * 13) % 90)}`;
        last = writer.append(['SET', `k${turn}`, value]);
        expected.push(value);
      }
      // Every tenth turn waits for its fdatasync (which releases the retained batches), the rest
      // only for the write: retained batches pile up over several chunks in between.
      if (turn % 10 === 9) await writer.waitFsynced(last);
      else await writer.waitWritten(last);
    }
    const { taken, allocated } = writer.stats().arenaChunks;
    expect(syncs).toBeGreaterThan(0);
    expect(taken).toBeGreaterThan(50);
    expect(allocated).toBeLessThan(taken / 2);
    // Idle: the next trims find nothing taken and drop every spare.
    expect(writer.stats().arenaChunks.spare).toBeGreaterThan(0);
    await new Promise<void>((resolve) => {
      const poll = (): void => {
        if (writer.stats().arenaChunks.spare === 0) resolve();
        else setTimeout(poll, 10);
      };
      poll();
    });
    await writer.close();
    const { result, got } = await scanBack(file.bytes, 0);
    expect(result.defect).toBeNull();
    expect(got.map((g) => g.argv[2]?.toString('utf8'))).toEqual(expected);
  });
});
