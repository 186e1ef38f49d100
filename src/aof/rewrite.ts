/**
 * The AOF rewrite's generic parts: what the engine hands to a snapshotter (the
 * job), the writer of a base file (header, CRC-framed batches, fdatasync every
 * 4 MB, fdatasync at the end), the framing of compact snapshot records
 * (`AOFQ.SNAPSHOT-BEGIN`, `AOFQ.SNAPSHOT <section> <crc+payload>`), and the
 * rules of when to rewrite (Redis's growth formula, the failure back-off).
 *
 * It never knows what a state machine holds: the node layer's snapshotter
 * loads the files of the job into fresh state machines and asks them for
 * records or chunks (docs/AOF_FORMAT.md, "Rewrite").
 */
import * as path from 'node:path';
import { AofqError } from '../errors/index.js';
import { type Arg, RespWriter } from '../resp/encode.js';
import { assert, assertUint } from '../util/assert.js';
import { crc32c, encodeBatchAnnotation, encodeFileHeader } from './format.js';
import type { AofFile, FsLayer } from './fs.js';
import type { FileToLoad } from './loader.js';

export type BaseFormat = 'preamble' | 'commands';

/** What a snapshotter is asked to do: load `files` (the log up to `lsn`) and write the base to `tempPath`. */
export interface RewriteJob {
  /** The base and incr files that hold every record up to `lsn`, in load order. Immutable. */
  files: FileToLoad[];
  /** The rotation's boundary: the new base holds the state as of this LSN. */
  lsn: number;
  /** Where to write the base (in the AOF directory); the engine renames it. */
  tempPath: string;
  format: BaseFormat;
  /** fdatasync every REWRITE_FSYNC_EVERY_BYTES while writing (aof-rewrite-incremental-fsync). */
  incrementalFsync: boolean;
  /** The leader's time at the rotation: keys expired at this time are not written. */
  nowMs: number;
}

export interface RewriteOutput {
  /** Size of the base file written. */
  bytes: number;
}

/**
 * Produces the base file of a rewrite. Supplied by the node layer (its helper
 * process). `signal` aborts it (the engine is closing): it then rejects soon.
 */
export type Snapshotter = (job: RewriteJob, signal: AbortSignal) => Promise<RewriteOutput>;

export type RewriteStatus = 'started' | 'scheduled';

export interface RewriteStart {
  status: RewriteStatus;
  /** Redis's reply text. */
  message: string;
}

/** Redis's words (aof.c, bgrewriteaofCommand). */
export const REWRITE_MESSAGES = Object.freeze({
  started: 'Background append only file rewriting started',
  scheduled: 'Background append only file rewriting scheduled',
  inProgress: 'Background append only file rewriting already in progress',
});

/** Bytes of records gathered into one batch of a base file. */
export const REWRITE_BATCH_BYTES = 1024 * 1024;
/** aof-rewrite-incremental-fsync: fdatasync after this many bytes (Redis: REDIS_AUTOSYNC_BYTES, 4 MB). */
export const REWRITE_FSYNC_EVERY_BYTES = 4 * 1024 * 1024;
/** Payload bytes aimed at per compact snapshot chunk (an entry larger than this gets its own chunk). */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Failed rewrites in a row after which automatic rewrites back off (Redis: 3). */
export const REWRITE_FAILURES_BEFORE_BACKOFF = 3;
export const REWRITE_BACKOFF_MIN_MS = 60_000;
export const REWRITE_BACKOFF_MAX_MS = 60 * 60_000;
/** Temp files of a rewrite: `temp-rewriteaof-<seq>.aof` in the AOF directory. */
export const TEMP_REWRITE_PREFIX = 'temp-rewriteaof-';

export function tempRewriteName(seq: number): string {
  assertUint(seq, 'seq');
  return `${TEMP_REWRITE_PREFIX}${seq}.aof`;
}

/**
 * How long automatic rewrites wait after `failures` failures in a row: 0 for
 * fewer than 3, then 1 minute, doubling up to 60 minutes.
 */
export function rewriteBackoffMs(failures: number): number {
  assertUint(failures, 'failures');
  if (failures < REWRITE_FAILURES_BEFORE_BACKOFF) return 0;
  const doublings = Math.min(failures - REWRITE_FAILURES_BEFORE_BACKOFF, 16);
  return Math.min(REWRITE_BACKOFF_MAX_MS, REWRITE_BACKOFF_MIN_MS * 2 ** doublings);
}

/**
 * Redis's growth formula (serverCron): rewrite when the AOF is larger than
 * `minSize` and has grown by `percentage` percent over the size it had after
 * the last rewrite (`baseSize`; 1 when unknown). Percentage 0 turns it off.
 */
export function autoRewriteDue(s: {
  currentSize: number;
  baseSize: number;
  percentage: number;
  minSize: number;
}): boolean {
  if (s.percentage <= 0 || s.currentSize <= s.minSize) return false;
  const base = s.baseSize > 0 ? s.baseSize : 1;
  const growth = Math.floor((s.currentSize * 100) / base) - 100;
  return growth >= s.percentage;
}

// --- compact snapshot records ------------------------------------------------------

export const SNAPSHOT_BEGIN = 'AOFQ.SNAPSHOT-BEGIN';
export const SNAPSHOT_CHUNK = 'AOFQ.SNAPSHOT';
export const SNAPSHOT_FORMAT_VERSION = 1;
const SECTION_RE = /^[a-z][a-z0-9-]{0,31}$/;
const CHUNK_CRC_BYTES = 4;
const BEGIN_NAME = Buffer.from(SNAPSHOT_BEGIN, 'latin1');
const CHUNK_NAME = Buffer.from(SNAPSHOT_CHUNK, 'latin1');

function snapshotError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_AOF_SNAPSHOT', { reason });
}

/** The first record of a compact base: format version, the snapshot's LSN and time. */
export function snapshotBeginRecord(lsn: number, nowMs: number): Buffer[] {
  assertUint(lsn, 'snapshot lsn');
  assertUint(nowMs, 'snapshot time');
  return [
    BEGIN_NAME,
    Buffer.from(String(SNAPSHOT_FORMAT_VERSION)),
    Buffer.from(String(lsn)),
    Buffer.from(String(nowMs)),
  ];
}

/** One chunk of a section's entries: `AOFQ.SNAPSHOT <section> <crc32c BE><payload>`. */
export function snapshotChunkRecord(section: string, payload: Buffer): Buffer[] {
  assert(SECTION_RE.test(section), `snapshot section name: ${section}`);
  const chunk = Buffer.allocUnsafe(CHUNK_CRC_BYTES + payload.length);
  chunk.writeUInt32BE(crc32c(payload), 0);
  payload.copy(chunk, CHUNK_CRC_BYTES);
  return [CHUNK_NAME, Buffer.from(section, 'latin1'), chunk];
}

const UINT_RE = /^\d{1,16}$/;

/** Check a `AOFQ.SNAPSHOT-BEGIN` record read from disk. Throws AOFQ_ERR_AOF_SNAPSHOT. */
export function parseSnapshotBegin(argv: readonly Buffer[]): { version: number; lsn: number; nowMs: number } {
  if (argv.length !== 4) throw snapshotError(`${SNAPSHOT_BEGIN} has ${argv.length - 1} arguments, not 3`);
  const fields = argv.slice(1).map((b) => (b.length <= 16 ? b.toString('latin1') : ''));
  if (!fields.every((f) => UINT_RE.test(f))) throw snapshotError(`${SNAPSHOT_BEGIN}: bad number`);
  const [version, lsn, nowMs] = fields.map(Number) as [number, number, number];
  if (version < 1 || version > SNAPSHOT_FORMAT_VERSION) {
    throw snapshotError(`snapshot format ${version} (this aofq reads up to ${SNAPSHOT_FORMAT_VERSION})`);
  }
  return { version, lsn, nowMs };
}

/** Check a `AOFQ.SNAPSHOT` record read from disk and return its section and payload (a view). */
export function openSnapshotChunk(argv: readonly Buffer[]): { section: string; payload: Buffer } {
  if (argv.length !== 3) throw snapshotError(`${SNAPSHOT_CHUNK} has ${argv.length - 1} arguments, not 2`);
  const sectionBytes = argv[1] as Buffer;
  const chunk = argv[2] as Buffer;
  const section = sectionBytes.length <= 32 ? sectionBytes.toString('latin1') : '';
  if (!SECTION_RE.test(section)) throw snapshotError('bad section name');
  if (chunk.length < CHUNK_CRC_BYTES) throw snapshotError('chunk shorter than its CRC');
  const payload = chunk.subarray(CHUNK_CRC_BYTES);
  const want = chunk.readUInt32BE(0);
  const got = crc32c(payload);
  if (want !== got) {
    throw snapshotError(
      `chunk CRC mismatch in section ${section}: says ${want.toString(16)}, is ${got.toString(16)}`,
    );
  }
  return { section, payload };
}

// --- the base file writer ----------------------------------------------------------

export interface BaseFileOptions {
  incrementalFsync: boolean;
  /** Batch annotation time (Unix ms). */
  nowMs: number;
  batchBytes?: number;
  fsyncEveryBytes?: number;
}

/**
 * Writes a base file: `#aofq v=1 kind=base lsn=L`, then batches of records
 * (annotation with lsn=L and CRC32C), exactly as the loader and
 * redis-check-aof read them. `add` buffers; call `flush` when it says so.
 */
export class BaseFileWriter {
  private readonly resp: RespWriter;
  private count = 0;
  private size = 0;
  private sinceFsync = 0;
  private closed = false;
  private readonly batchBytes: number;
  private readonly fsyncEveryBytes: number;

  private constructor(
    private readonly fs: FsLayer,
    private readonly file: AofFile,
    readonly filePath: string,
    private readonly lsn: number,
    private readonly opts: BaseFileOptions,
  ) {
    this.batchBytes = opts.batchBytes ?? REWRITE_BATCH_BYTES;
    this.fsyncEveryBytes = opts.fsyncEveryBytes ?? REWRITE_FSYNC_EVERY_BYTES;
    assert(this.batchBytes > 0 && this.fsyncEveryBytes > 0, 'base writer sizes');
    this.resp = new RespWriter(Math.min(this.batchBytes + 4096, 8 * 1024 * 1024));
  }

  /** Create (or empty) `filePath` and write the header. */
  static async create(
    fs: FsLayer,
    filePath: string,
    lsn: number,
    opts: BaseFileOptions,
  ): Promise<BaseFileWriter> {
    assertUint(lsn, 'base lsn');
    const file = await fs.open(filePath, 'truncate');
    const writer = new BaseFileWriter(fs, file, filePath, lsn, opts);
    try {
      await writer.writeAll(encodeFileHeader({ kind: 'base', lsn }));
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return writer;
  }

  get bytes(): number {
    return this.size;
  }

  /** Buffer one record. True when a batch is full: the caller then awaits `flush()`. */
  add(record: readonly Arg[]): boolean {
    assert(!this.closed, 'add after close');
    assert(record.length >= 1, 'a record has a name');
    this.resp.command(record);
    this.count++;
    return this.resp.length >= this.batchBytes;
  }

  /** Write the buffered records as one batch. */
  async flush(): Promise<void> {
    if (this.count === 0) return;
    const body = this.resp.take();
    const annotation = encodeBatchAnnotation({
      lsn: this.lsn,
      count: this.count,
      bytes: body.length,
      crc: crc32c(body),
      ms: this.opts.nowMs,
    });
    this.count = 0;
    await this.writeAll(annotation);
    await this.writeAll(body);
    if (this.opts.incrementalFsync && this.sinceFsync >= this.fsyncEveryBytes) {
      await this.file.datasync();
      this.sinceFsync = 0;
    }
  }

  /** Flush, fdatasync, close. Returns the file's size. */
  async finish(): Promise<number> {
    await this.flush();
    await this.file.datasync();
    this.closed = true;
    await this.file.close();
    return this.size;
  }

  /** Close and remove the file; errors are swallowed (a failed rewrite cleans up as it can). */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.file.close().catch(() => undefined);
    }
    await this.fs.unlink(this.filePath).catch(() => undefined);
  }

  private async writeAll(buf: Buffer): Promise<void> {
    let done = 0;
    // Each pass writes at least one byte or throws.
    for (let pass = 0; done < buf.length; pass++) {
      assert(pass <= buf.length, 'base write loop bound');
      const n = await this.file.write(done === 0 ? buf : buf.subarray(done));
      if (!(n > 0)) {
        const err: NodeJS.ErrnoException = new Error(`short write of ${path.basename(this.filePath)}`);
        err.code = 'ENOSPC';
        throw err;
      }
      done += n;
    }
    this.size += buf.length;
    this.sinceFsync += buf.length;
  }
}
