/**
 * Loading the AOF at start: the manifest, then the base and every incr file in
 * order, through the RESP decoder, verifying every batch (record count, length,
 * CRC32C, LSN). It owns the torn-tail rule (a defect is forgiven only at the
 * end of the last file, when no valid batch follows it), the truncation that
 * repairs it, the import of files written by redis-server 7 (no aofq header:
 * records numbered consecutively, MULTI/EXEC applied at EXEC), and the upgrade
 * of a plain single-file `appendonly.aof` into the multi-part layout. The
 * per-file scanner here is shared with the check tool (check.ts).
 */
import * as path from 'node:path';
import { AofqError } from '../errors/index.js';
import { type AnnotationEvent, type CommandEvent, RespDecoder, RespProtocolError } from '../resp/decode.js';
import { AssertionError, assert, assertUint } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import type { Logger } from '../util/logger.js';
import type { AofConfig } from './config.js';
import { type BatchAnnotation, crc32c, type FileHeader, FORMAT_VERSION, parseAnnotation } from './format.js';
import type { FsLayer } from './fs.js';
import {
  type AofFileType,
  baseEntry,
  loadOrder,
  type Manifest,
  type ManifestEntry,
  manifestPath,
  persistManifest,
  readManifest,
} from './manifest.js';

export interface LoadSink {
  /**
   * One record, in log order. `argv` may share memory with the read chunks: a
   * sink that keeps a Buffer for long should copy it. Throwing refuses the
   * load (the error is wrapped with the file, offset and LSN).
   */
  record(argv: Buffer[], lsn: number): void;
  progress?(doneBytes: number, totalBytes: number): void;
}

export interface LoadedFile {
  name: string;
  /** Size after any truncation. */
  size: number;
  type: AofFileType;
  /** The aofq header, or null for a file written by Redis (or an empty file). */
  header: FileHeader | null;
}

export interface LoadResult {
  manifest: Manifest;
  /** LSN of the last record loaded (a base's records carry the base's LSN); 0 when nothing. */
  lastLsn: number;
  /** The last file of the load order: where appends continue (if it is an incr of ours). */
  lastFile: LoadedFile | null;
  truncated: { file: string; offset: number; lostBytes: number } | null;
  /** Bytes of all files loaded, after truncation. */
  totalBytes: number;
  /** True when a plain single-file AOF from redis-server was moved into the directory by this load. */
  imported: boolean;
  /** Records delivered to the sink. */
  records: number;
}

export function aofDirPath(cfg: AofConfig): string {
  return path.join(cfg.dir, cfg.appenddirname);
}

export function repairCommand(manifestFile: string): string {
  return `aofq check-aof --fix ${manifestFile}`;
}

// --- the per-file scanner ---------------------------------------------------------

/** Smallest RESP record the loader accepts: `*1\r\n$0\r\n\r\n`. */
const MIN_RECORD_BYTES = 10;
const REDIS_RDB_MAGIC = Buffer.from('REDIS', 'latin1');
const BATCH_PREFIX = Buffer.from('\n#aofq b ', 'latin1');
const LONGEST_ANNOTATION = 256;

/**
 * - `eof`: the file ends inside a unit (partial line, record, batch or MULTI).
 * - `format`: bad bytes (garbage, CRC mismatch, a batch that does not hold what it says).
 * - `fatal`: a defect that no torn write explains (LSN gap, wrong kind, aofq
 *   annotations in a Redis file, unsupported version): always refused.
 */
export type DefectKind = 'eof' | 'format' | 'fatal';

export interface Defect {
  kind: DefectKind;
  /** Where the damaged unit starts: truncating here keeps every valid unit before it. */
  offset: number;
  /** Where the problem was detected (>= offset). */
  detectedAt: number;
  reason: string;
  /** The LSN the damaged batch claims, when it is a batch of ours. */
  lsn?: number;
}

export interface ScanFileOptions {
  fs: FsLayer;
  filePath: string;
  /** Name in messages. */
  name: string;
  size: number;
  type: AofFileType;
  /** LSN of the last record before this file. */
  lsnBefore: number;
  /** The manifest's startlsn, when it has one. */
  entryStartLsn?: number;
  /** Called for each verified record. */
  onRecord?: (argv: Buffer[], lsn: number, start: number) => void;
  /** Bytes of this file scanned so far. */
  onProgress?: (doneBytes: number) => void;
  /** Stop at the first batch (or #TS line) later than this Unix second; see `cut`. */
  truncateToSeconds?: number;
  chunkBytes?: number;
}

export interface ScanFileResult {
  header: FileHeader | null;
  /** Records delivered. */
  records: number;
  /** LSN of the last record delivered (lsnBefore when none; the base's LSN for a base of ours). */
  lastLsn: number;
  /** End of the last complete, valid unit. */
  validUpTo: number;
  /** RESP lines read (Redis's count for ok_up_to_line: two per argument plus one per record). */
  lines: number;
  defect: Defect | null;
  /** Start of the first batch or #TS line later than truncateToSeconds (the scan stops there). */
  cut: { offset: number; unixSeconds: number } | null;
  /** Valid batches read. */
  batches: number;
  /** Where records may begin: after the aofq header, or 0. */
  dataStart: number;
}

interface PendingBatch {
  annotation: BatchAnnotation;
  annotationStart: number;
  start: number;
  end: number;
  records: { argv: Buffer[]; start: number }[];
  crc: number;
  crcPos: number;
}

function upperName(arg: Buffer | undefined): string {
  if (arg === undefined || arg.length > 16) return '';
  return arg.toString('latin1').toUpperCase();
}

/**
 * Scan one file: decode, verify, deliver records, and stop at the first defect.
 * File-format problems come back as `defect`; only I/O errors and errors from
 * `onRecord` are thrown.
 */
export async function scanFile(opts: ScanFileOptions): Promise<ScanFileResult> {
  const chunkBytes = opts.chunkBytes ?? LIMITS.aofLoadChunkBytes;
  assertUint(opts.lsnBefore, 'lsnBefore');
  const result: ScanFileResult = {
    header: null,
    records: 0,
    lastLsn: opts.lsnBefore,
    validUpTo: 0,
    lines: 0,
    defect: null,
    cut: null,
    batches: 0,
    dataStart: 0,
  };
  if (opts.size === 0) return result;
  const decoder = new RespDecoder({ annotations: true, startOffset: 0 });
  let mode: 'unknown' | 'aofq' | 'foreign' = 'unknown';
  let nextLsn = opts.lsnBefore + 1;
  let batch: PendingBatch | null = null;
  // Foreign files: records of an open MULTI, delivered at EXEC.
  let multi: { start: number; records: { argv: Buffer[]; start: number }[] } | null = null;
  // Chunks still needed for CRCs: held[0] starts at heldStart.
  const held: Buffer[] = [];
  let heldStart = 0;
  let heldEnd = 0;
  let done = 0;

  const crcRange = (from: number, to: number, initial: number): number => {
    let crc = initial;
    let chunkStart = heldStart;
    for (const chunk of held) {
      const chunkEnd = chunkStart + chunk.length;
      if (chunkEnd > from && chunkStart < to) {
        const a = Math.max(from, chunkStart) - chunkStart;
        const b = Math.min(to, chunkEnd) - chunkStart;
        crc = crc32c(chunk.subarray(a, b), crc);
      }
      chunkStart = chunkEnd;
    }
    return crc;
  };

  const setDefect = (kind: DefectKind, offset: number, detectedAt: number, reason: string, lsn?: number) => {
    result.defect = { kind, offset, detectedAt, reason };
    if (lsn !== undefined) result.defect.lsn = lsn;
  };

  const deliver = (argv: Buffer[], lsn: number, start: number): void => {
    result.records++;
    opts.onRecord?.(argv, lsn, start);
  };

  const checkCut = (seconds: number, offset: number): boolean => {
    if (opts.truncateToSeconds === undefined || seconds <= opts.truncateToSeconds) return false;
    result.cut = { offset, unixSeconds: seconds };
    return true;
  };

  /** Handle one event in an aofq file; false stops the scan. */
  const aofqEvent = (ev: AnnotationEvent | CommandEvent): boolean => {
    const header = result.header as FileHeader;
    if (batch !== null) {
      const b: PendingBatch = batch;
      if (ev.kind === 'annotation') {
        setDefect('format', b.annotationStart, ev.start, 'an annotation inside a batch', b.annotation.lsn);
        return false;
      }
      result.lines += 1 + 2 * ev.argv.length;
      if (ev.argv.length === 0) {
        setDefect('format', b.annotationStart, ev.start, 'an empty record', b.annotation.lsn);
        return false;
      }
      if (ev.end > b.end) {
        setDefect(
          'format',
          b.annotationStart,
          ev.start,
          'a record crosses the end of its batch',
          b.annotation.lsn,
        );
        return false;
      }
      b.records.push({ argv: ev.argv, start: ev.start });
      const full = b.records.length === b.annotation.count;
      if (!full && ev.end < b.end) return true;
      if (!full || ev.end !== b.end) {
        const reason = full
          ? `the batch's ${b.annotation.count} records end before its ${b.annotation.bytes} bytes`
          : `the batch holds ${b.records.length} records in ${b.annotation.bytes} bytes, not ${b.annotation.count}`;
        setDefect('format', b.annotationStart, ev.end, reason, b.annotation.lsn);
        return false;
      }
      const crc = crcRange(b.crcPos, b.end, b.crc) >>> 0;
      if (crc !== b.annotation.crc) {
        const want = b.annotation.crc.toString(16).padStart(8, '0');
        const got = crc.toString(16).padStart(8, '0');
        setDefect(
          'format',
          b.annotationStart,
          b.end,
          `CRC mismatch: the batch says ${want}, its bytes give ${got}`,
          b.annotation.lsn,
        );
        return false;
      }
      // Verified: deliver.
      for (let i = 0; i < b.records.length; i++) {
        const r = b.records[i]!;
        if (header.kind === 'base') {
          deliver(r.argv, header.lsn, r.start);
        } else {
          deliver(r.argv, nextLsn, r.start);
          result.lastLsn = nextLsn;
          nextLsn++;
        }
      }
      result.batches++;
      result.validUpTo = b.end;
      batch = null;
      return true;
    }
    if (ev.kind === 'command') {
      result.lines += 1 + 2 * ev.argv.length;
      setDefect('format', ev.start, ev.start, 'a record outside a batch');
      return false;
    }
    const a = parseAnnotation(ev.text);
    if (a.type === 'timestamp') return !checkCut(a.unixSeconds, ev.start);
    if (a.type === 'header') {
      setDefect('format', ev.start, ev.start, 'a file header that is not at the start of the file');
      return false;
    }
    if (a.type === 'other') {
      const what = ev.text.startsWith('aofq') ? 'a malformed aofq annotation' : 'an unknown annotation';
      setDefect('format', ev.start, ev.start, `${what} '${ev.text.slice(0, 80)}'`);
      return false;
    }
    const ann = a.batch;
    const expected = header.kind === 'base' ? header.lsn : nextLsn;
    if (ann.count * MIN_RECORD_BYTES > ann.bytes) {
      setDefect(
        'format',
        ev.start,
        ev.start,
        `a batch of ${ann.count} records cannot fit in ${ann.bytes} bytes`,
        ann.lsn,
      );
      return false;
    }
    if (ev.end + ann.bytes > opts.size) {
      setDefect(
        'eof',
        ev.start,
        opts.size,
        `the batch needs ${ann.bytes} bytes, the file ends first`,
        ann.lsn,
      );
      return false;
    }
    if (ann.lsn !== expected) {
      // Checked after the length, so that a torn last batch is not called an LSN gap.
      setDefect(
        'fatal',
        ev.start,
        ev.start,
        `the batch starts at LSN ${ann.lsn}, expected ${expected}`,
        ann.lsn,
      );
      return false;
    }
    if (checkCut(Math.floor(ann.ms / 1000), ev.start)) return false;
    batch = {
      annotation: ann,
      annotationStart: ev.start,
      start: ev.end,
      end: ev.end + ann.bytes,
      records: [],
      crc: 0,
      crcPos: ev.end,
    };
    if (ann.bytes === 0) {
      // count >= 1 and bytes >= 10 * count: unreachable, kept as a guard.
      setDefect('format', ev.start, ev.start, 'an empty batch', ann.lsn);
      return false;
    }
    return true;
  };

  /** Handle one event in a file written by Redis; false stops the scan. */
  const foreignEvent = (ev: AnnotationEvent | CommandEvent): boolean => {
    if (ev.kind === 'annotation') {
      const a = parseAnnotation(ev.text);
      if (a.type === 'header' || a.type === 'batch' || ev.text.startsWith('aofq')) {
        setDefect('fatal', ev.start, ev.start, 'an aofq annotation in a file without an aofq header');
        return false;
      }
      if (a.type === 'timestamp') {
        // A cut inside an open MULTI goes before the MULTI.
        const m = multi as { start: number } | null;
        return !checkCut(a.unixSeconds, m !== null ? m.start : ev.start);
      }
      return true;
    }
    result.lines += 1 + 2 * ev.argv.length;
    if (ev.argv.length === 0) {
      setDefect('format', ev.start, ev.start, 'an empty record');
      return false;
    }
    const name = upperName(ev.argv[0]);
    if (name === 'MULTI' && ev.argv.length === 1) {
      if (multi !== null) {
        setDefect('format', multi.start, ev.start, 'Unexpected MULTI');
        return false;
      }
      multi = { start: ev.start, records: [] };
      return true;
    }
    if (name === 'EXEC' && ev.argv.length === 1) {
      if (multi === null) {
        setDefect('format', ev.start, ev.start, 'Unexpected EXEC');
        return false;
      }
      const m: { start: number; records: { argv: Buffer[]; start: number }[] } = multi;
      for (const r of m.records) {
        deliver(r.argv, nextLsn, r.start);
        result.lastLsn = nextLsn;
        nextLsn++;
      }
      multi = null;
      result.validUpTo = ev.end;
      return true;
    }
    if (multi !== null) {
      const m: { start: number; records: { argv: Buffer[]; start: number }[] } = multi;
      if (m.records.length >= LIMITS.aofMaxMultiRecords) {
        setDefect(
          'format',
          m.start,
          ev.start,
          `a MULTI holds more than ${LIMITS.aofMaxMultiRecords} records`,
        );
        return false;
      }
      m.records.push({ argv: ev.argv, start: ev.start });
      return true;
    }
    deliver(ev.argv, nextLsn, ev.start);
    result.lastLsn = nextLsn;
    nextLsn++;
    result.validUpTo = ev.end;
    return true;
  };

  let first = true;
  let stopped = false;
  for await (const chunk of opts.fs.readChunks(opts.filePath, chunkBytes)) {
    assert(chunk.length > 0 && chunk.length <= chunkBytes, 'readChunks returned a bad chunk');
    if (first) {
      first = false;
      if (chunk.length >= REDIS_RDB_MAGIC.length && chunk.subarray(0, 5).equals(REDIS_RDB_MAGIC)) {
        setDefect(
          'fatal',
          0,
          0,
          'an RDB preamble: aofq reads RESP AOF files only (use aof-use-rdb-preamble no)',
        );
        stopped = true;
        break;
      }
    }
    // Before the decoder's chunk list and ours grow: fold what a pending batch
    // already has into its CRC, then drop chunks nothing needs.
    if (batch !== null) {
      const b: PendingBatch = batch;
      const to = Math.min(b.end, heldEnd);
      if (to > b.crcPos) {
        b.crc = crcRange(b.crcPos, to, b.crc);
        b.crcPos = to;
      }
    }
    const keepFrom = batch !== null ? (batch as PendingBatch).crcPos : decoder.offset;
    while (held.length > 0 && heldStart + held[0]!.length <= keepFrom) {
      heldStart += held.shift()!.length;
    }
    if (held.length === 0) heldStart = heldEnd;
    held.push(chunk);
    heldEnd += chunk.length;
    if (heldEnd > opts.size) {
      // The file grew while we read it: only the size we were given counts.
      const excess = heldEnd - opts.size;
      const trimmed = chunk.subarray(0, chunk.length - excess);
      held[held.length - 1] = trimmed;
      heldEnd = opts.size;
      if (trimmed.length > 0) decoder.push(trimmed);
    } else {
      decoder.push(chunk);
    }
    done = heldEnd;
    // Bounded: each event consumes at least one byte of this chunk or what is held.
    for (let guard = 0; ; guard++) {
      assert(guard <= chunk.length + 1, 'scan loop bound');
      let ev: ReturnType<RespDecoder['nextCommand']>;
      try {
        ev = decoder.nextCommand();
      } catch (err) {
        if (!(err instanceof RespProtocolError)) throw err;
        const b = batch as PendingBatch | null;
        const m = multi as { start: number } | null;
        const unitStart = b !== null ? b.annotationStart : m !== null ? m.start : decoder.offset;
        setDefect('format', unitStart, err.offset, err.reason, b?.annotation.lsn);
        stopped = true;
        break;
      }
      if (ev === undefined) break;
      if (mode === 'unknown') {
        if (ev.kind === 'annotation' && ev.start === 0) {
          const a = parseAnnotation(ev.text);
          if (a.type === 'header') {
            mode = 'aofq';
            if (a.version > FORMAT_VERSION || a.version < 1) {
              setDefect('fatal', 0, 0, `aofq file format version ${a.version} is not supported`);
              stopped = true;
              break;
            }
            const wantKind = opts.type === 'b' ? 'base' : 'incr';
            if (a.header.kind !== wantKind) {
              setDefect(
                'fatal',
                0,
                0,
                `the file header says kind=${a.header.kind}, the manifest says ${opts.type}`,
              );
              stopped = true;
              break;
            }
            const wantLsn = opts.type === 'b' ? (opts.entryStartLsn ?? a.header.lsn) : opts.lsnBefore;
            if (
              a.header.lsn !== wantLsn ||
              (opts.entryStartLsn !== undefined && opts.entryStartLsn !== a.header.lsn)
            ) {
              setDefect('fatal', 0, 0, `the file starts after LSN ${a.header.lsn}, expected ${wantLsn}`);
              stopped = true;
              break;
            }
            result.header = a.header;
            if (a.header.kind === 'base') result.lastLsn = a.header.lsn;
            nextLsn = a.header.lsn + 1;
            result.validUpTo = ev.end;
            result.dataStart = ev.end;
            continue;
          }
        }
        mode = 'foreign';
        if (opts.entryStartLsn !== undefined && opts.entryStartLsn !== opts.lsnBefore) {
          setDefect(
            'fatal',
            0,
            0,
            `the manifest says the file starts after LSN ${opts.entryStartLsn}, expected ${opts.lsnBefore}`,
          );
          stopped = true;
          break;
        }
      }
      const go = mode === 'aofq' ? aofqEvent(ev) : foreignEvent(ev);
      if (!go) {
        stopped = true;
        break;
      }
    }
    opts.onProgress?.(done);
    if (stopped) break;
    if (heldEnd >= opts.size) break;
  }
  if (stopped) return result;
  // End of file: anything not consumed is a unit cut short.
  const end = Math.min(heldEnd, opts.size);
  if (end < opts.size) {
    setDefect('eof', decoder.offset, end, `the file is ${opts.size} bytes, only ${end} could be read`);
    return result;
  }
  if (decoder.buffered > 0) {
    const leftover = tailBytes(held, heldStart, decoder.offset, end);
    // Redis ignores a last '#' line without its line ending; so do we, in a
    // Redis file (in ours, a partial line is a torn write).
    if (mode !== 'aofq' && leftover !== null && leftover[0] === 0x23 && !leftover.includes(0x0a)) {
      if (!leftover.toString('latin1', 1, 5).startsWith('aofq')) return result;
    }
  }
  const b = batch as PendingBatch | null;
  const m = multi as { start: number } | null;
  if (b !== null) {
    setDefect('eof', b.annotationStart, end, 'the file ends inside a batch', b.annotation.lsn);
  } else if (m !== null) {
    setDefect('eof', m.start, end, 'Reached EOF before reading EXEC for MULTI');
  } else if (decoder.buffered > 0) {
    setDefect('eof', decoder.offset, end, 'the file ends inside a record or line');
  }
  return result;
}

/** The bytes [from, to) if they are still held (they are, for an unconsumed tail). */
function tailBytes(held: Buffer[], heldStart: number, from: number, to: number): Buffer | null {
  if (from < heldStart) return null;
  const parts: Buffer[] = [];
  let start = heldStart;
  for (const chunk of held) {
    const chunkEnd = start + chunk.length;
    if (chunkEnd > from)
      parts.push(chunk.subarray(Math.max(0, from - start), Math.min(chunk.length, to - start)));
    start = chunkEnd;
  }
  return Buffer.concat(parts).subarray(0, Math.min(64, to - from));
}

/**
 * Is there a valid batch of ours (annotation at a line start, all its bytes in
 * the file, CRC matching) starting after `from`? Returns its offset or null.
 * This is what separates a torn tail (nothing valid after the damage) from
 * damage in the middle of the log.
 */
export async function findValidBatchAfter(
  fs: FsLayer,
  filePath: string,
  from: number,
  size: number,
  chunkBytes: number = LIMITS.aofLoadChunkBytes,
): Promise<number | null> {
  assertUint(from, 'from');
  if (from >= size) return null;
  // A batch annotation is found by the line ending before it, so the unit at `from` itself never matches.
  let carry = Buffer.alloc(0);
  let carryStart = from;
  for await (const chunk of fs.readChunks(filePath, chunkBytes, from)) {
    const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const bufStart = carryStart;
    let at = buf.indexOf(BATCH_PREFIX);
    // Bounded: each iteration moves `at` forward by at least one byte.
    while (at !== -1) {
      const annotationStart = bufStart + at + 1;
      const ok = await isValidBatchAt(fs, filePath, annotationStart, size);
      if (ok) return annotationStart;
      at = buf.indexOf(BATCH_PREFIX, at + 1);
    }
    const keep = Math.min(buf.length, BATCH_PREFIX.length - 1);
    carry = Buffer.from(buf.subarray(buf.length - keep));
    carryStart = bufStart + buf.length - keep;
    if (carryStart + keep >= size) break;
  }
  return null;
}

async function readRange(fs: FsLayer, filePath: string, start: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  for await (const chunk of fs.readChunks(filePath, Math.min(length, LIMITS.aofLoadChunkBytes), start)) {
    parts.push(chunk.subarray(0, Math.min(chunk.length, length - got)));
    got += chunk.length;
    if (got >= length) break;
  }
  return Buffer.concat(parts);
}

async function isValidBatchAt(fs: FsLayer, filePath: string, start: number, size: number): Promise<boolean> {
  const head = await readRange(fs, filePath, start, Math.min(LONGEST_ANNOTATION, size - start));
  const lf = head.indexOf(0x0a);
  if (lf === -1) return false;
  const lineEnd = lf > 0 && head[lf - 1] === 0x0d ? lf - 1 : lf;
  const a = parseAnnotation(head.toString('latin1', 1, lineEnd));
  if (a.type !== 'batch') return false;
  const bodyStart = start + lf + 1;
  if (bodyStart + a.batch.bytes > size) return false;
  let crc = 0;
  let remaining = a.batch.bytes;
  for await (const chunk of fs.readChunks(filePath, LIMITS.aofLoadChunkBytes, bodyStart)) {
    const part = chunk.subarray(0, Math.min(chunk.length, remaining));
    crc = crc32c(part, crc);
    remaining -= part.length;
    if (remaining === 0) break;
  }
  return remaining === 0 && crc >>> 0 === a.batch.crc;
}

// --- loading the whole log ---------------------------------------------------------

function corrupt(file: string, offset: number, reason: string, repair: string, lsn?: number): AofqError {
  const params: Record<string, string | number> = { file, offset, reason, repair };
  if (lsn !== undefined) params.lsn = lsn;
  return new AofqError('AOFQ_ERR_AOF_CORRUPT', params);
}

function truncatedError(file: string, offset: number, reason: string, repair: string): AofqError {
  return new AofqError('AOFQ_ERR_AOF_TRUNCATED', { file, offset, reason, repair });
}

const AOF_NAME_RE = /^(.*)\.(\d{1,15})\.(base|incr)\.(aof|rdb)$/;

/** Files in `dirPath` named like AOF parts of `appendfilename`, with their seq and type. */
export async function listAofFiles(
  fs: FsLayer,
  dirPath: string,
  appendfilename: string,
): Promise<{ name: string; seq: number; kind: 'base' | 'incr'; ext: string }[]> {
  let names: string[];
  try {
    names = await fs.readdir(dirPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: { name: string; seq: number; kind: 'base' | 'incr'; ext: string }[] = [];
  for (const name of names) {
    const m = AOF_NAME_RE.exec(name);
    if (!m || m[1] !== appendfilename) continue;
    out.push({ name, seq: Number(m[2]), kind: m[3] as 'base' | 'incr', ext: m[4] as string });
  }
  return out.sort((a, b) => a.seq - b.seq || a.kind.localeCompare(b.kind));
}

function emptyResult(): LoadResult {
  return {
    manifest: { entries: [] },
    lastLsn: 0,
    lastFile: null,
    truncated: null,
    totalBytes: 0,
    imported: false,
    records: 0,
  };
}

/**
 * Redis's upgrade of a plain single-file AOF (aof.c, aofUpgradePrepare): the
 * manifest naming the old file as the base is persisted first, then the file
 * is moved into the directory. A crash in between is finished at the next load.
 */
async function upgradeLegacyFile(cfg: AofConfig, fs: FsLayer, logger: Logger): Promise<Manifest> {
  const dirPath = aofDirPath(cfg);
  await fs.mkdirp(dirPath);
  const manifest: Manifest = {
    entries: [{ name: cfg.appendfilename, seq: 1, type: 'b', startLsn: 0 }],
    nextSeq: 2,
  };
  await persistManifest(fs, dirPath, cfg.appendfilename, manifest);
  await moveLegacyIntoDir(cfg, fs);
  logger.warn(
    { file: cfg.appendfilename, dir: dirPath },
    'Upgraded a single-file AOF written by Redis into the multi-part layout',
  );
  return manifest;
}

async function moveLegacyIntoDir(cfg: AofConfig, fs: FsLayer): Promise<void> {
  const dirPath = aofDirPath(cfg);
  await fs.rename(path.join(cfg.dir, cfg.appendfilename), path.join(dirPath, cfg.appendfilename));
  await fs.fsyncDir(dirPath);
  await fs.fsyncDir(cfg.dir);
}

async function firstBytes(fs: FsLayer, filePath: string, n: number): Promise<Buffer> {
  for await (const chunk of fs.readChunks(filePath, n)) return chunk;
  return Buffer.alloc(0);
}

/**
 * Load `<cfg.dir>/<cfg.appenddirname>/` into `sink`. See docs/AOF_FORMAT.md for
 * the rules. Throws AofqError: AOFQ_ERR_AOF_MANIFEST, AOFQ_ERR_AOF_MISSING_FILE,
 * AOFQ_ERR_AOF_CORRUPT, AOFQ_ERR_AOF_TRUNCATED, AOFQ_ERR_AOF_BAD_RECORD.
 */
export async function loadAof(
  cfg: AofConfig,
  fs: FsLayer,
  sink: LoadSink,
  logger: Logger,
): Promise<LoadResult> {
  const dirPath = aofDirPath(cfg);
  const manifestFile = manifestPath(dirPath, cfg.appendfilename);
  const repair = repairCommand(manifestFile);
  let manifest = await readManifest(fs, dirPath, cfg.appendfilename);
  let imported = false;
  const legacyPath = path.join(cfg.dir, cfg.appendfilename);
  if (manifest === null) {
    const legacySize = await fs.size(legacyPath);
    const parts = await listAofFiles(fs, dirPath, cfg.appendfilename);
    if (parts.length > 0) {
      throw new AofqError('AOFQ_ERR_AOF_MANIFEST', {
        reason: `The AOF directory ${dirPath} holds AOF files but no manifest. Run: aofq check-aof --rebuild-manifest ${manifestFile}`,
      });
    }
    if (legacySize === null) return emptyResult();
    if (legacySize >= 5 && (await firstBytes(fs, legacyPath, 5)).equals(REDIS_RDB_MAGIC)) {
      throw corrupt(cfg.appendfilename, 0, 'an RDB preamble: aofq reads RESP AOF files only', repair);
    }
    manifest = await upgradeLegacyFile(cfg, fs, logger);
    imported = true;
  } else {
    // An upgrade interrupted after the manifest was written: finish it.
    const base = baseEntry(manifest);
    if (
      base !== undefined &&
      base.name === cfg.appendfilename &&
      (await fs.size(path.join(dirPath, base.name))) === null &&
      (await fs.size(legacyPath)) !== null
    ) {
      await moveLegacyIntoDir(cfg, fs);
      imported = true;
    }
  }

  const order = loadOrder(manifest);
  const sizes: number[] = [];
  let totalBytes = 0;
  for (const entry of order) {
    const size = await fs.size(path.join(dirPath, entry.name));
    if (size === null) throw new AofqError('AOFQ_ERR_AOF_MISSING_FILE', { file: entry.name });
    sizes.push(size);
    totalBytes += size;
  }
  let lastLsn = 0;
  let records = 0;
  let doneBefore = 0;
  let truncated: LoadResult['truncated'] = null;
  let lastFile: LoadedFile | null = null;
  for (let i = 0; i < order.length; i++) {
    const entry = order[i] as ManifestEntry;
    const size = sizes[i] as number;
    const isLast = i === order.length - 1;
    const filePath = path.join(dirPath, entry.name);
    const scan = await scanFile({
      fs,
      filePath,
      name: entry.name,
      size,
      type: entry.type,
      lsnBefore: lastLsn,
      ...(entry.startLsn !== undefined ? { entryStartLsn: entry.startLsn } : {}),
      onRecord: deliverTo(sink, entry.name),
      onProgress: (done) => sink.progress?.(doneBefore + done, totalBytes),
    });
    records += scan.records;
    let finalSize = size;
    const d = scan.defect;
    if (d !== null) {
      if (d.kind === 'fatal') throw corrupt(entry.name, d.offset, d.reason, repair, d.lsn);
      if (!isLast) {
        if (d.kind === 'eof') {
          throw truncatedError(
            entry.name,
            d.offset,
            `${d.reason}; the truncated file is not the last file`,
            repair,
          );
        }
        throw corrupt(entry.name, d.offset, d.reason, repair, d.lsn);
      }
      // The last file: a torn tail, unless valid data follows the damage.
      if (d.kind === 'format') {
        if (scan.header === null) throw corrupt(entry.name, d.offset, d.reason, repair, d.lsn);
        const after = await findValidBatchAfter(fs, filePath, d.offset, size);
        if (after !== null) {
          throw corrupt(
            entry.name,
            d.offset,
            `${d.reason}; a valid batch follows at offset ${after}`,
            repair,
            d.lsn,
          );
        }
      }
      if (!cfg.aofLoadTruncated) {
        throw truncatedError(entry.name, d.offset, d.reason, repair);
      }
      const offset = scan.validUpTo;
      assert(offset <= d.offset, 'truncation point after the damage');
      logger.warn(
        { file: entry.name, offset, lostBytes: size - offset, reason: d.reason },
        `!!! Warning: short read while loading the AOF file ${entry.name}!!! Truncating the AOF at offset ${offset}`,
      );
      await fs.truncate(filePath, offset);
      truncated = { file: entry.name, offset, lostBytes: size - offset };
      finalSize = offset;
      totalBytes -= size - offset;
    }
    lastLsn = scan.lastLsn;
    doneBefore += size;
    lastFile = { name: entry.name, size: finalSize, type: entry.type, header: scan.header };
  }
  sink.progress?.(totalBytes, totalBytes);
  return { manifest, lastLsn, lastFile, truncated, totalBytes, imported, records };
}

/** Hand a file's records to the sink; a record the state machine rejects becomes AOFQ_ERR_AOF_BAD_RECORD with its place. */
function deliverTo(sink: LoadSink, fileName: string): (argv: Buffer[], lsn: number, start: number) => void {
  return (argv, lsn, start) => {
    try {
      sink.record(argv, lsn);
    } catch (err) {
      if (err instanceof AssertionError) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      throw new AofqError(
        'AOFQ_ERR_AOF_BAD_RECORD',
        { file: fileName, offset: start, lsn, reason },
        { cause: err },
      );
    }
  };
}

/** The aofq header of a file (its first line), or null if it has none. */
export async function readFileHeader(fs: FsLayer, filePath: string): Promise<FileHeader | null> {
  const head = await firstBytes(fs, filePath, LONGEST_ANNOTATION);
  if (head[0] !== 0x23) return null;
  const lf = head.indexOf(0x0a);
  if (lf === -1) return null;
  const lineEnd = lf > 0 && head[lf - 1] === 0x0d ? lf - 1 : lf;
  const a = parseAnnotation(head.toString('latin1', 1, lineEnd));
  return a.type === 'header' ? a.header : null;
}

/** Does the file start with Redis's RDB magic? */
export async function hasRdbPreamble(fs: FsLayer, filePath: string): Promise<boolean> {
  const head = await firstBytes(fs, filePath, REDIS_RDB_MAGIC.length);
  return head.length === REDIS_RDB_MAGIC.length && head.equals(REDIS_RDB_MAGIC);
}

/** One file of a fixed list to load: what `loadAofFiles` needs of its manifest entry. */
export interface FileToLoad {
  /** Absolute path. */
  path: string;
  /** The manifest's name for it, in messages. */
  name: string;
  type: AofFileType;
  startLsn?: number;
}

/**
 * Load exactly `files`, in order, into `sink`: the rewrite's view of the log
 * up to a rotation point. The files are immutable (a rotation closed them,
 * fsynced), so every defect is refused, a torn tail included, and nothing is
 * ever truncated. Returns the LSN of the last record and the record count.
 */
export async function loadAofFiles(
  fs: FsLayer,
  files: readonly FileToLoad[],
  sink: LoadSink,
): Promise<{ lastLsn: number; records: number }> {
  let lastLsn = 0;
  let records = 0;
  for (const file of files) {
    const size = await fs.size(file.path);
    if (size === null) throw new AofqError('AOFQ_ERR_AOF_MISSING_FILE', { file: file.name });
    const scan = await scanFile({
      fs,
      filePath: file.path,
      name: file.name,
      size,
      type: file.type,
      lsnBefore: lastLsn,
      ...(file.startLsn !== undefined ? { entryStartLsn: file.startLsn } : {}),
      onRecord: deliverTo(sink, file.name),
    });
    const d = scan.defect;
    if (d !== null) throw corrupt(file.name, d.offset, d.reason, 'none: the file is closed', d.lsn);
    records += scan.records;
    lastLsn = scan.lastLsn;
  }
  return { lastLsn, records };
}
