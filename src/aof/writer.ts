/**
 * The AOF writer: owns the one open incr file and everything that reaches it.
 * Group commit (all records appended in one event-loop turn go out as one
 * framed batch in one write), the three fsync policies, the LSN frontiers
 * (last appended, written, fsynced) and the waits on them, and the handling of
 * write and fsync errors: refuse new records, keep what was appended in
 * memory, undo half-written batches, retry until the disk accepts them again.
 *
 * As in Redis, write(2) runs on the event-loop thread, once a turn
 * (`flush`, from setImmediate): a write into the page cache takes
 * microseconds, a thread-pool round trip does not, and a reply waits for its
 * write. fdatasync runs in the thread pool, one at a time, beside the writes:
 * under `always` the next one starts the moment the previous one returns,
 * covering every batch written meanwhile. The slow paths (retry after an
 * error, rotation, close) run one at a time in `pump`. Under everysec a write
 * behind a pending fsync is postponed for up to 2 s, as Redis does. Records
 * are encoded straight into an arena of large chunks;
 * a batch is a view of its chunk that holds `[#TS:..][#aofq b ..][records]`,
 * kept until it is fsynced so that it can be written again after an fsync
 * error (after a failed fsync Linux may drop the dirty pages: "fsyncgate").
 *
 * Durability: waitFsynced(lsn) resolves once the record is on disk. Under
 * `appendfsync no` a record is never known durable until rotation or close;
 * waitDurable() then resolves once the record is written (see AofEngine).
 */
import { performance } from 'node:perf_hooks';
import { AofqError } from '../errors/index.js';
import type { Arg } from '../resp/encode.js';
import { assert, assertUint } from '../util/assert.js';
import type { Clock } from '../util/clock.js';
import { LIMITS } from '../util/limits.js';
import type { Logger } from '../util/logger.js';
import type { AppendFsync } from './config.js';
import {
  type BatchAnnotation,
  batchAnnotationBytes,
  crc32c,
  encodeTimestamp,
  writeBatchAnnotation,
} from './format.js';
import type { AofFile } from './fs.js';

/** Bytes reserved in front of each batch's records for the `#TS:` and batch annotation lines. */
const PREFIX_RESERVE_BYTES = 128;
const CR = 0x0d;
const LF = 0x0a;

/** Timings the tests shorten; production uses the LIMITS. */
export interface WriterTiming {
  everysecIntervalMs: number;
  maxFsyncPostponeMs: number;
  writeRetryMs: number;
  writeErrorLogMs: number;
  maxBatchBytes: number;
  arenaChunkBytes: number;
  arenaSpareBytes: number;
  /** How often spare arena chunks are trimmed to what the writer took in that time (recycle()). */
  arenaSpareTrimMs: number;
}

export const DEFAULT_WRITER_TIMING: WriterTiming = Object.freeze({
  everysecIntervalMs: LIMITS.aofEverysecIntervalMs,
  maxFsyncPostponeMs: LIMITS.aofMaxFsyncPostponeMs,
  writeRetryMs: LIMITS.aofWriteRetryMs,
  writeErrorLogMs: LIMITS.aofWriteErrorLogMs,
  maxBatchBytes: LIMITS.aofMaxBatchBytes,
  arenaChunkBytes: LIMITS.aofArenaChunkBytes,
  arenaSpareBytes: LIMITS.aofArenaSpareBytes,
  arenaSpareTrimMs: LIMITS.aofArenaSpareTrimMs,
});

export interface WriterOptions {
  file: AofFile;
  /** For log lines. */
  fileName: string;
  /** Current size of the file; everything in it is durable (the engine fsynced it). */
  size: number;
  /** LSN of the last record in the log; the next append gets lastLsn + 1. */
  lastLsn: number;
  policy: AppendFsync;
  timestamps: boolean;
  clock: Clock;
  logger: Logger;
  timing?: Partial<WriterTiming>;
  /** Called after every successful fdatasync of the AOF with its latency in µs (metrics); must not throw. */
  onFsync?: (latencyUs: number) => void;
}

/** What rotation hands back: the new file, already holding its header, fsynced and named by the manifest. */
export interface RotatedFile {
  file: AofFile;
  fileName: string;
  size: number;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function noop(): void {}

function deferred(): Deferred {
  let resolve: () => void = noop;
  let reject: (err: unknown) => void = noop;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A waiter may drop its promise; a rejection then must not become an unhandled one.
  promise.catch(noop);
  return { promise, resolve, reject };
}

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * An arena chunk, and how many batches that hold bytes in it the writer still needs (unwritten,
 * or written and retained until an fdatasync covers them). See recycle().
 */
interface Chunk {
  readonly buf: Buffer;
  /** The same memory, for the encoders' word stores. */
  readonly view: DataView;
  batches: number;
  /** In the spares: no batch may take bytes in it until it is taken again. */
  spare: boolean;
}

function newChunk(size: number): Chunk {
  const buf = Buffer.allocUnsafe(size);
  return { buf, view: viewOf(buf), batches: 0, spare: false };
}

const NO_BYTES = Buffer.alloc(0);

interface Batch {
  readonly firstLsn: number;
  readonly lastLsn: number;
  /**
   * Exactly the bytes written: optional `#TS:` line, batch annotation, records. Emptied when the
   * batch is released (releaseBytes()): its chunk may then hold another batch's bytes.
   */
  bytes: Buffer;
  readonly chunk: Chunk;
  /** File offset just past the batch once written; -1 before. */
  endOffset: number;
  written: Deferred | null;
  fsynced: Deferred | null;
}

/** A FIFO of batches ordered by LSN, with binary search. */
class BatchQueue {
  private items: Batch[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  peek(): Batch | undefined {
    return this.items[this.head];
  }
  push(b: Batch): void {
    this.items.push(b);
  }
  shift(): Batch | undefined {
    const b = this.items[this.head];
    if (b === undefined) return undefined;
    this.items[this.head] = undefined as unknown as Batch;
    this.head++;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return b;
  }
  /** Take every batch out, oldest first. */
  drain(): Batch[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return out;
  }
  /** Put batches in front, keeping their order. */
  prepend(batches: Batch[]): void {
    this.items = batches.concat(this.items.slice(this.head));
    this.head = 0;
  }
  find(lsn: number): Batch | undefined {
    let lo = this.head;
    let hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const b = this.items[mid] as Batch;
      if (lsn < b.firstLsn) hi = mid - 1;
      else if (lsn > b.lastLsn) lo = mid + 1;
      else return b;
    }
    return undefined;
  }
  *[Symbol.iterator](): Iterator<Batch> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as Batch;
  }
}

interface Failure {
  error: NodeJS.ErrnoException;
  /** An fsync failed: rewrite everything not yet durable before trusting the file again. */
  needsRewind: boolean;
  /** Cut the file back to this size before the next write (a half batch may be on disk). */
  truncateTo: number | null;
  /** Recovery is complete only after an fsync succeeds. */
  needsFsync: boolean;
}

interface Rotation {
  prepare: (boundaryLsn: number) => Promise<RotatedFile>;
  done: Deferred;
}

type WriterState = 'open' | 'closing' | 'closed';

/** Digits of an integer in 0..2^31-1, by comparisons. */
function digits32(n: number): number {
  if (n < 100000) return n < 100 ? (n < 10 ? 1 : 2) : n < 1000 ? 3 : n < 10000 ? 4 : 5;
  return n < 10000000 ? (n < 1000000 ? 6 : 7) : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
}

/** Digits of a non-negative safe integer, without making its text (a timestamp has 13). */
function decimalDigits(n: number): number {
  return n < 1e9 ? digits32(n) : 9 + digits32(Math.floor(n / 1e9));
}

/*
 * The encoders below write through a DataView of the arena chunk as well as through the Buffer:
 * one 32-bit or 16-bit store in place of two to four byte stores. Each typed-array byte store
 * is a bounds check, an address computation and the store; the word stores cut the writer's
 * instructions per queue cycle by a quarter (bench:instructions, writer-cycle). Words are
 * little-endian (the first byte in the low bits), whatever the host. A word store may run up
 * to three bytes past what an argument needs; every such store lands inside the room that
 * append() made sure of for the record (every argument at its short maximum, or the exact
 * bound that it reserved; see ARG_OVERHEAD_BYTES) and is overwritten by what follows, or lies
 * beyond the record's end, where nothing is kept.
 */

/** "00" to "99" as two ASCII digits in one little-endian 16-bit word: digits are written two at a time. */
const DIGIT_PAIRS = Uint16Array.from(
  { length: 100 },
  (_, i) => (48 + ((i / 10) | 0)) | ((48 + (i % 10)) << 8),
);

/** CR LF as one little-endian 16-bit word. */
const CRLF16 = CR | (LF << 8);

/** Writes the int32 `x` (>= 0) as ASCII digits ending just before `end`. */
function writeDigitsBackward(view: DataView, end: number, x: number): void {
  let i = end;
  while (x >= 100) {
    const q = (x / 100) | 0;
    i -= 2;
    view.setUint16(i, DIGIT_PAIRS[x - q * 100] as number, true);
    x = q;
  }
  if (x >= 10) view.setUint16(i - 2, DIGIT_PAIRS[x] as number, true);
  else view.setUint8(i - 1, 48 + x);
}

/**
 * Write the non-negative safe integer `n` as ASCII digits at `pos`; returns the position after
 * them. Above 10^9 it splits into two parts that fit int32 arithmetic (a double divided by ten
 * thirteen times is twice as slow), and it writes two digits per division.
 */
function writeDecimal(view: DataView, pos: number, n: number): number {
  if (n < 1e9) {
    const end = pos + digits32(n);
    writeDigitsBackward(view, end, n | 0);
    return end;
  }
  const hi = Math.floor(n / 1e9);
  const lo = (n - hi * 1e9) | 0;
  const end = pos + 9 + digits32(hi);
  // The low nine digits, zero-padded: four pairs and one digit.
  let x = lo;
  let i = end;
  for (let k = 0; k < 4; k++) {
    const q = (x / 100) | 0;
    i -= 2;
    view.setUint16(i, DIGIT_PAIRS[x - q * 100] as number, true);
    x = q;
  }
  view.setUint8(--i, 48 + x);
  writeDigitsBackward(view, i, hi | 0);
  return end;
}

/** Strings up to this length are copied by a JS loop that also checks that they are ASCII. */
const SHORT_ARG_CHARS = 64;
assert(SHORT_ARG_CHARS < 100, "a short string's length line is `$<one or two digits>\\r\\n`");

/** The most bytes one argument can take beyond its content: `$`, 16 length digits, two CRLFs. */
const ARG_OVERHEAD_BYTES = 21;

/** The most bytes a number argument can take: a safe integer's 16 digits, or String(n) of any double. */
const NUMBER_MAX_BYTES = 24;

/** The most bytes a record's `*<argc>\r\n` line can take, with room for a word store's overrun. */
const RECORD_HEADER_MAX_BYTES = 3 + ARG_OVERHEAD_BYTES;

/**
 * The most bytes a short argument can take: a number, or a string or byte string of at most
 * SHORT_ARG_CHARS units (three bytes a UTF-16 unit). A record whose arguments are all short fits
 * RECORD_HEADER_MAX_BYTES + argc * SHORT_ARG_MAX_BYTES without counting them.
 */
const SHORT_ARG_MAX_BYTES = ARG_OVERHEAD_BYTES + 3 * SHORT_ARG_CHARS;
assert(NUMBER_MAX_BYTES <= 3 * SHORT_ARG_CHARS, 'a number argument is short');

/** The most bytes the record `argv` can take: its exact bound, one pass over the arguments. */
function recordBound(argv: readonly Arg[]): number {
  let bound = RECORD_HEADER_MAX_BYTES;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as Arg;
    bound +=
      ARG_OVERHEAD_BYTES +
      (typeof arg === 'number' ? NUMBER_MAX_BYTES : typeof arg === 'string' ? 3 * arg.length : arg.length);
  }
  return bound;
}

/** `<mark><len>\r\n` (mark: `$` or `*`); returns the position after it. One store below 10, two below 100. */
function writeLengthLine(view: DataView, p: number, mark: number, len: number): number {
  if (len < 10) {
    view.setUint32(p, mark | ((48 + len) << 8) | (CRLF16 << 16), true);
    return p + 4;
  }
  if (len < 100) {
    view.setUint32(p, mark | ((DIGIT_PAIRS[len] as number) << 8) | (CR << 24), true);
    view.setUint8(p + 4, LF);
    return p + 5;
  }
  view.setUint8(p, mark);
  p = writeDecimal(view, p + 1, len);
  view.setUint16(p, CRLF16, true);
  return p + 2;
}

/** `$<len>\r\n`; returns the position after it. */
function writeArgHeader(view: DataView, p: number, len: number): number {
  return writeLengthLine(view, p, 0x24, len);
}

/**
 * The encodings (`$13\r\n<digits>`) of the last few numbers of ten digits or more, as words. They
 * are timestamps: the node reads the clock once per burst of commands, so a burst's records carry
 * the same few (now, now + leaseMs), and a queue cycle's four 13-digit encodings become five word
 * copies each. A pure function's memo: any writer may share it.
 */
const LONG_NUMBER_SLOTS = 4;
const LONG_NUMBER_SLOT_WORDS = 8;
const longNumberValues = new Float64Array(LONG_NUMBER_SLOTS).fill(-1);
const longNumberLengths = new Uint8Array(LONG_NUMBER_SLOTS);
const longNumberWords = new Uint32Array(LONG_NUMBER_SLOTS * LONG_NUMBER_SLOT_WORDS);
let longNumberNext = 0;

/**
 * `$<digits>\r\n<n>` for a safe integer n >= 1e9, from the memo when it holds n. Kept small
 * (the miss is its own function) so that TurboFan inlines it into the encoder: its inlining
 * budget is spent by bytecode size, and the calls it leaves out cost the writer about a tenth
 * of its instructions.
 */
function writeLongNumberArg(view: DataView, p: number, n: number): number {
  for (let slot = 0; slot < LONG_NUMBER_SLOTS; slot++) {
    if (longNumberValues[slot] === n) {
      const from = slot * LONG_NUMBER_SLOT_WORDS;
      const len = longNumberLengths[slot] as number;
      for (let k = 0, words = (len + 3) >> 2; k < words; k++) {
        view.setUint32(p + 4 * k, longNumberWords[from + k] as number, true);
      }
      return p + len;
    }
  }
  return writeLongNumberMiss(view, p, n);
}

/** writeLongNumberArg's miss: the digits, then their words into the memo's next slot. */
function writeLongNumberMiss(view: DataView, p: number, n: number): number {
  const end = writeDecimal(view, writeArgHeader(view, p, decimalDigits(n)), n);
  const slot = longNumberNext;
  longNumberNext = (slot + 1) % LONG_NUMBER_SLOTS;
  const len = end - p;
  assert(len <= 4 * LONG_NUMBER_SLOT_WORDS, 'a long number encoding fits its memo slot');
  // Whole words, read back from the arena: the bytes past `end` are scratch, never copied as content.
  for (let k = 0, words = (len + 3) >> 2; k < words; k++) {
    longNumberWords[slot * LONG_NUMBER_SLOT_WORDS + k] = view.getUint32(p + 4 * k, true);
  }
  longNumberLengths[slot] = len;
  longNumberValues[slot] = n;
  return end;
}

/** A number argument is its decimal text: digits for a non-negative safe integer, else String(n). */
function writeNumberArg(buf: Buffer, view: DataView, p: number, n: number): number {
  if (n >= 0 && n < 1e9 && Math.floor(n) === n) {
    // The common case (counts, tokens, ids, lengths): at most nine digits, so `$<d>\r\n` is one store.
    const x = n | 0;
    const digits = digits32(x);
    view.setUint32(p, 0x24 | ((48 + digits) << 8) | (CRLF16 << 16), true);
    const end = p + 4 + digits;
    writeDigitsBackward(view, end, x);
    return end;
  }
  if (Number.isSafeInteger(n) && n >= 0) return writeLongNumberArg(view, p, n);
  const text = String(n); // ASCII: digits, '-', '.', 'e', '+', "NaN", "Infinity"
  p = writeArgHeader(view, p, text.length);
  return p + buf.write(text, p, 'latin1');
}

/**
 * `buf.utf8Write(text, offset, maxBytes)`: the method that Buffer#write calls once it has
 * checked and normalized its arguments (two validateOffset calls and an encoding switch, which
 * took more of the queue cycle than the native write itself). Not in Node's documentation but
 * on Buffer.prototype in every release this project supports (Node >= 20); checked at load.
 * The writer's offsets are in range by construction (reserve() made the room).
 */
type Utf8Write = (this: Buffer, text: string, offset: number, maxBytes: number) => number;
const utf8Write = (Buffer.prototype as unknown as { utf8Write?: Utf8Write }).utf8Write as Utf8Write;
assert(typeof utf8Write === 'function', 'Buffer.prototype.utf8Write exists (Node >= 20)');

/**
 * A string argument through one native write, before the header: the byte length is in [n, 3n],
 * most likely with as many digits as n. The content goes where a header of that width leaves it;
 * in the rare case that the count has one digit more, the content moves up one byte. The caller
 * reserved 3n bytes plus the header's most (ARG_OVERHEAD_BYTES). Returns the position after the
 * content (before the final CRLF). Short ASCII strings never come here: the encoder copies them.
 */
function writeUtf8Arg(buf: Buffer, view: DataView, p: number, text: string): number {
  const n = text.length;
  const guess = decimalDigits(n);
  const body = p + 3 + guess;
  const len = utf8Write.call(buf, text, body, 3 * n);
  const digits = decimalDigits(len);
  if (digits !== guess) buf.copyWithin(body + digits - guess, body, body + len);
  return writeArgHeader(view, p, len) + len;
}

/** A byte-string argument's content; returns the position after it. Short ones by words, four bytes a store. */
function writeBytesArg(buf: Buffer, view: DataView, p: number, arg: Buffer): number {
  const len = arg.length;
  if (len > 32) return p + arg.copy(buf, p);
  let j = 0;
  for (; j + 4 <= len; j += 4) {
    view.setUint32(
      p + j,
      (arg[j] as number) |
        ((arg[j + 1] as number) << 8) |
        ((arg[j + 2] as number) << 16) |
        ((arg[j + 3] as number) << 24),
      true,
    );
  }
  for (; j < len; j++) buf[p + j] = arg[j] as number;
  return p + len;
}

/** A DataView of exactly `buf`'s bytes. */
function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.length);
}

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(message);
  err.code = code;
  return err;
}

function asErrno(err: unknown): NodeJS.ErrnoException {
  return err instanceof Error ? (err as NodeJS.ErrnoException) : errnoError('EIO', String(err));
}

export class AofWriter {
  private file: AofFile;
  private fileName: string;
  private policy: AppendFsync;
  private readonly timestamps: boolean;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly timing: WriterTiming;
  private state: WriterState = 'open';

  // --- LSN frontiers -----------------------------------------------------------
  private lastLsnValue: number;
  private writtenLsnValue: number;
  private fsyncedLsnValue: number;

  // --- file offsets ------------------------------------------------------------
  /** End of the last complete batch written. */
  private fileSize: number;
  /** Everything below is fsynced. */
  private durableSize: number;
  /** Everything from here to fileSize is held in `retained` (below it only what is durable, or was written under `no`). */
  private rebuildableFrom: number;

  // --- the open batch (in the arena) ---------------------------------------------
  private chunk: Buffer;
  /** `chunk` and `view` with the count of live batches in them. */
  private chunkRef: Chunk;
  /** Arena chunks that no live batch uses, for reuse (recycle()). */
  private readonly spareChunks: Chunk[] = [];
  /** Chunks taken since the last trim: as many spares are kept (trimSpares()). */
  private chunksTaken = 0;
  private chunksTakenTotal = 0;
  private chunksAllocated = 0;
  private spareTimer: NodeJS.Timeout | null = null;
  /** The same memory as `chunk`, for the encoders' word stores. Set together with it: in the constructor and by setChunk(). */
  private view: DataView;
  private batchStart = 0;
  private offset = 0;
  /**
   * While a batch is open: the offset that its records may reach without reserve(), the end of
   * the chunk or of the batch's byte limit, whichever comes first. Set by reserve().
   */
  private openLimit = 0;
  private openFirstLsn = 0;
  private openCount = 0;
  private openWritten: Deferred | null = null;
  private openFsynced: Deferred | null = null;

  // --- batches -------------------------------------------------------------------
  /** Sealed, waiting for the pump. */
  private readonly unwritten = new BatchQueue();
  /** Written, not yet fsynced; kept to be written again after an fsync error. */
  private readonly retained = new BatchQueue();
  private unwrittenBytes = 0;
  /** fsync waits on LSNs no batch holds any more (written under `no`). */
  private lsnWaiters: Array<{ lsn: number; done: Deferred }> = [];
  /** Pending fsync waits (each deferred settles once). */
  private fsyncWaiters = 0;

  // --- the pump ------------------------------------------------------------------
  private pumping = false;
  private kickAgain = false;
  private immediateScheduled = false;
  private syncRequestedLsn = 0;
  private rotation: Rotation | null = null;
  /** A rotation fixed its boundary: appends wait in memory until the new file is in place. */
  private holdForRotation = false;
  private closeDone: Deferred | null = null;
  private closeError: AofqError | null = null;
  /** An error while closing: the pump ends the close with it. */
  private closeFailure: AofqError | null = null;

  // --- everysec ------------------------------------------------------------------
  private fsyncInFlight = false;
  private everysecTimer: NodeJS.Timeout | null = null;
  private lastFsyncStartMs: number;
  private postponeStartMs = 0;
  private postponeTimer: NodeJS.Timeout | null = null;

  // --- errors ----------------------------------------------------------------------
  private failure: Failure | null = null;
  /** Counts failures, so that a pump round notices one that arrived while it awaited. */
  private failureEpoch = 0;
  private retryDue = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private lastErrorLogMs = Number.NEGATIVE_INFINITY;

  // --- statistics -------------------------------------------------------------------
  private lastTimestampSec = 0;
  private delayedFsyncCount = 0;
  private lastFsyncLatencyUsValue = 0;
  private bytesWrittenValue = 0;
  private lastWriteErrorValue: string | null = null;
  private readonly onFsync: ((latencyUs: number) => void) | undefined;

  constructor(opts: WriterOptions) {
    assertUint(opts.size, 'writer size');
    assertUint(opts.lastLsn, 'writer lastLsn');
    this.file = opts.file;
    this.fileName = opts.fileName;
    this.policy = opts.policy;
    this.timestamps = opts.timestamps;
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.timing = { ...DEFAULT_WRITER_TIMING, ...opts.timing };
    assert(this.timing.arenaChunkBytes >= 4 * PREFIX_RESERVE_BYTES, 'arena chunk size');
    this.lastLsnValue = opts.lastLsn;
    this.writtenLsnValue = opts.lastLsn;
    this.fsyncedLsnValue = opts.lastLsn;
    this.fileSize = opts.size;
    this.durableSize = opts.size;
    this.rebuildableFrom = opts.size;
    assert(this.timing.arenaSpareBytes >= 0, 'arena spare bytes');
    this.chunkRef = newChunk(this.timing.arenaChunkBytes);
    this.chunk = this.chunkRef.buf;
    this.view = this.chunkRef.view;
    this.lastFsyncStartMs = performance.now();
    this.onFsync = opts.onFsync;
  }

  // --- public surface -----------------------------------------------------------------

  get lastLsn(): number {
    return this.lastLsnValue;
  }
  get writtenLsn(): number {
    return this.writtenLsnValue;
  }
  get fsyncedLsn(): number {
    return this.fsyncedLsnValue;
  }
  get appendFsync(): AppendFsync {
    return this.policy;
  }
  /** False while a write or fsync error stands, and once closing. */
  get writable(): boolean {
    return this.failure === null && this.state === 'open';
  }
  get currentFileName(): string {
    return this.fileName;
  }
  get currentFileSize(): number {
    return this.fileSize;
  }

  stats(): {
    lastWriteStatus: 'ok' | 'err';
    lastWriteError: string | null;
    bufferLength: number;
    pendingFsync: number;
    delayedFsync: number;
    lastFsyncLatencyUs: number;
    bytesWritten: number;
    fileSize: number;
    /** Arena chunks: switched to, newly allocated (the rest were spares reused), spare now. */
    arenaChunks: { taken: number; allocated: number; spare: number };
  } {
    return {
      lastWriteStatus: this.failure === null ? 'ok' : 'err',
      lastWriteError: this.lastWriteErrorValue,
      bufferLength: this.openBytes() + this.unwrittenBytes,
      pendingFsync: this.fsyncInFlight ? 1 : 0,
      delayedFsync: this.delayedFsyncCount,
      lastFsyncLatencyUs: this.lastFsyncLatencyUsValue,
      bytesWritten: this.bytesWrittenValue,
      fileSize: this.fileSize,
      arenaChunks: {
        taken: this.chunksTakenTotal,
        allocated: this.chunksAllocated,
        spare: this.spareChunks.length,
      },
    };
  }

  /**
   * Encode one record into the open batch; returns its LSN. Synchronous. Each argument is
   * written with its exact length into room reserved for its largest possible encoding (a
   * string takes at most three bytes a UTF-16 unit). The common case counts nothing first:
   * when the open batch has room for the record as if every argument were short, it is
   * encoded straight away, and a long argument checks the room that it needs before it is
   * written. Only when that fails, or no batch is open, is the exact bound counted and
   * reserved and the record encoded again from its start (nothing of the first try is kept).
   */
  append(argv: readonly Arg[]): number {
    if (this.state !== 'open' || this.failure !== null) this.refuse();
    const argc = argv.length;
    assert(argc >= 1, 'a record has at least one argument');
    let end = -1;
    if (
      this.openCount > 0 &&
      this.offset + RECORD_HEADER_MAX_BYTES + argc * SHORT_ARG_MAX_BYTES <= this.openLimit
    ) {
      end = this.encode(argv, this.offset, this.openLimit);
    }
    if (end < 0) {
      const bound = recordBound(argv);
      this.reserve(bound);
      end = this.encode(argv, this.offset, Number.POSITIVE_INFINITY);
      assert(end >= 0 && end <= this.offset + bound, 'record encoding fits its bound');
    }
    assert(end <= this.chunk.length, 'record encoding fits its chunk');
    this.offset = end;
    return this.added();
  }

  /**
   * Writes the record `argv` at `start`; returns the position after it, or -1 when a long
   * argument (and room for the rest as short ones) would pass `limit`. Every store, a word
   * store's overrun included, lands below `limit` when the caller made room for all arguments
   * as short ones, or below the exact bound that it reserved.
   */
  private encode(argv: readonly Arg[], start: number, limit: number): number {
    const buf = this.chunk;
    const view = this.view;
    const argc = argv.length;
    // '*': below 10 arguments one store, here rather than through writeLengthLine, which TurboFan's
    // inlining budget no longer reaches.
    let p = start + 4;
    if (argc < 10) view.setUint32(start, 0x2a | ((48 + argc) << 8) | (CRLF16 << 16), true);
    else p = writeLengthLine(view, start, 0x2a, argc);
    for (let i = 0; i < argc; i++) {
      const arg = argv[i] as Arg;
      if (typeof arg === 'number') {
        p = writeNumberArg(buf, view, p, arg);
      } else if (typeof arg === 'string') {
        // Strings first and Buffers apart: a length read from either one is a float that is
        // converted back to an integer for every argument (7,875 to 7,669 instructions a cycle).
        const n = arg.length;
        if (n <= SHORT_ARG_CHARS) {
          // A short argument's `$<n>\r\n` (n < 100) in one or two stores, then its content: all of
          // it here in the loop, not in functions, which TurboFan's inlining budget does not reach
          // (a call per argument cost the writer a tenth of its instructions).
          const body = n < 10 ? p + 4 : p + 5;
          if (n < 10) view.setUint32(p, 0x24 | ((48 + n) << 8) | (CRLF16 << 16), true);
          else {
            view.setUint32(p, 0x24 | ((DIGIT_PAIRS[n] as number) << 8) | (CR << 24), true);
            view.setUint8(p + 4, LF);
          }
          // Optimistically ASCII (its byte length is then n): copied and checked in one loop,
          // four characters a store, the last one to three in one 16-bit store and one byte
          // store. At a character above 0x7f the native write starts the argument over.
          let j = 0;
          let ascii = true;
          for (; j + 4 <= n; j += 4) {
            const c0 = arg.charCodeAt(j);
            const c1 = arg.charCodeAt(j + 1);
            const c2 = arg.charCodeAt(j + 2);
            const c3 = arg.charCodeAt(j + 3);
            if ((c0 | c1 | c2 | c3) > 0x7f) {
              ascii = false;
              break;
            }
            view.setUint32(body + j, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24), true);
          }
          const rest = n - j;
          if (ascii && rest > 0) {
            const c0 = arg.charCodeAt(j);
            const c1 = rest > 1 ? arg.charCodeAt(j + 1) : 0;
            const c2 = rest > 2 ? arg.charCodeAt(j + 2) : 0;
            if ((c0 | c1 | c2) > 0x7f) ascii = false;
            else if (rest === 1) buf[body + j] = c0;
            else {
              view.setUint16(body + j, c0 | (c1 << 8), true);
              if (rest === 3) buf[body + j + 2] = c2;
            }
          }
          p = ascii ? body + n : writeUtf8Arg(buf, view, p, arg);
        } else {
          // A long string: the room for its most (3 bytes a unit), and for the rest as short ones.
          if (p + ARG_OVERHEAD_BYTES + 3 * n + (argc - 1 - i) * SHORT_ARG_MAX_BYTES > limit) return -1;
          p = writeUtf8Arg(buf, view, p, arg);
        }
      } else {
        const n = arg.length;
        if (n <= SHORT_ARG_CHARS) {
          // The same header as a short string's, written here a second time on purpose: one
          // function for both cost 346 instructions a queue cycle (the inlining budget), one
          // block for both behind a merged length 166 (writer-cycle 7,669 against 8,015 and 7,835).
          const body = n < 10 ? p + 4 : p + 5;
          if (n < 10) view.setUint32(p, 0x24 | ((48 + n) << 8) | (CRLF16 << 16), true);
          else {
            view.setUint32(p, 0x24 | ((DIGIT_PAIRS[n] as number) << 8) | (CR << 24), true);
            view.setUint8(p + 4, LF);
          }
          p = writeBytesArg(buf, view, body, arg);
        } else {
          if (p + ARG_OVERHEAD_BYTES + n + (argc - 1 - i) * SHORT_ARG_MAX_BYTES > limit) return -1;
          p = writeBytesArg(buf, view, writeArgHeader(view, p, n), arg);
        }
      }
      view.setUint16(p, CRLF16, true);
      p += 2;
    }
    return p;
  }

  /** Append one record that is already RESP (an array of bulk strings, checked by the caller). */
  appendEncoded(resp: Buffer): number {
    if (this.state !== 'open' || this.failure !== null) this.refuse();
    assert(resp.length >= 4 && resp[0] === 0x2a, 'an encoded record is a RESP array');
    assert(resp[resp.length - 2] === CR && resp[resp.length - 1] === LF, 'an encoded record ends with CRLF');
    this.reserve(resp.length);
    this.offset += resp.copy(this.chunk, this.offset);
    return this.added();
  }

  waitWritten(lsn: number): Promise<void> {
    this.checkLsn(lsn);
    if (lsn <= this.writtenLsnValue) return RESOLVED;
    if (this.closeError !== null) return Promise.reject(this.closeError);
    if (this.openCount > 0 && lsn >= this.openFirstLsn) {
      this.openWritten ??= deferred();
      return this.openWritten.promise;
    }
    const b = this.unwritten.find(lsn);
    if (b === undefined) assert(false, `LSN ${lsn} above the written frontier must be pending`);
    b.written ??= deferred();
    return b.written.promise;
  }

  waitFsynced(lsn: number): Promise<void> {
    this.checkLsn(lsn);
    if (lsn <= this.fsyncedLsnValue) return RESOLVED;
    if (this.closeError !== null) return Promise.reject(this.closeError);
    if (this.openCount > 0 && lsn >= this.openFirstLsn) {
      this.openFsynced ??= this.newFsyncWaiter();
      return this.openFsynced.promise;
    }
    const b = this.unwritten.find(lsn) ?? this.retained.find(lsn);
    if (b !== undefined) {
      b.fsynced ??= this.newFsyncWaiter();
      return b.fsynced.promise;
    }
    const done = this.newFsyncWaiter();
    this.lsnWaiters.push({ lsn, done });
    return done.promise;
  }

  /**
   * A deferred for an fsync wait. While any is pending, everysec's timer keeps
   * the process alive (it is unref'd otherwise), so that a waiter is not left
   * behind by a process with nothing else to do.
   */
  private newFsyncWaiter(): Deferred {
    this.fsyncWaiters++;
    this.everysecTimer?.ref();
    const d = deferred();
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.fsyncWaiters--;
      return true;
    };
    return {
      promise: d.promise,
      resolve: () => {
        if (settle()) d.resolve();
      },
      reject: (err) => {
        if (settle()) d.reject(err);
      },
    };
  }

  /** Under `no`: written. Otherwise: fsynced. */
  waitDurable(lsn: number): Promise<void> {
    return this.policy === 'no' ? this.waitWritten(lsn) : this.waitFsynced(lsn);
  }

  /** Resolves once every record appended so far is fsynced, whatever the policy. */
  sync(): Promise<void> {
    if (this.state === 'closed') return this.closeError ? Promise.reject(this.closeError) : RESOLVED;
    this.syncRequestedLsn = Math.max(this.syncRequestedLsn, this.lastLsnValue);
    const p = this.waitFsynced(this.lastLsnValue);
    this.kick();
    return p;
  }

  setAppendFsync(policy: AppendFsync): void {
    const previous = this.policy;
    if (policy === previous) return;
    this.policy = policy;
    this.logger.info({ from: previous, to: policy }, 'AOF fsync policy changed');
    // Waits made under a syncing policy expect an fsync; give them one.
    if (policy === 'no') this.syncRequestedLsn = Math.max(this.syncRequestedLsn, this.writtenLsnValue);
    if (policy === 'everysec' && this.fileSize > this.durableSize) this.armEverysec();
    this.kick();
  }

  /**
   * Switch to a new file. Everything sealed so far is written and fsynced to
   * the old file; `prepare(boundaryLsn)` creates the new one (header, fsync,
   * manifest); records appended meanwhile go to the new file.
   */
  rotate(prepare: (boundaryLsn: number) => Promise<RotatedFile>): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new AofqError('AOFQ_ERR_AOF_CLOSED'));
    if (this.failure !== null) return Promise.reject(this.writeFailedError());
    assert(this.rotation === null, 'one rotation at a time');
    const done = deferred();
    this.rotation = { prepare, done };
    this.kick();
    return done.promise;
  }

  /** Write and fsync everything, then close the file. Later appends throw AOFQ_ERR_AOF_CLOSED. */
  close(): Promise<void> {
    if (this.closeDone !== null) return this.closeDone.promise;
    this.closeDone = deferred();
    this.state = 'closing';
    this.clearTimer('everysecTimer');
    if (this.failure !== null) {
      // One last attempt now, not after the retry period.
      this.clearTimer('retryTimer');
      this.retryDue = true;
    }
    this.kick();
    return this.closeDone.promise;
  }

  // --- appending -------------------------------------------------------------------

  private refuse(): never {
    if (this.state !== 'open') throw new AofqError('AOFQ_ERR_AOF_CLOSED');
    throw this.writeFailedError();
  }

  private writeFailedError(): AofqError {
    return new AofqError('AOFQ_ERR_AOF_WRITE_FAILED', {
      reason: this.lastWriteErrorValue ?? 'unknown error',
    });
  }

  private checkLsn(lsn: number): void {
    // The message is built only on failure: this runs once per wait.
    if (!(Number.isSafeInteger(lsn) && lsn >= 0 && lsn <= this.lastLsnValue)) {
      assert(false, `LSN ${lsn} was never appended (last is ${this.lastLsnValue})`);
    }
  }

  private openBytes(): number {
    return this.openCount > 0 ? this.offset - this.batchStart - PREFIX_RESERVE_BYTES : 0;
  }

  /** Make room for `size` more record bytes in the open batch, starting one if needed. */
  private reserve(size: number): void {
    this.makeRoom(size);
    this.openLimit = Math.min(
      this.chunk.length,
      this.batchStart + PREFIX_RESERVE_BYTES + this.timing.maxBatchBytes,
    );
  }

  /** reserve()'s work: seal the batch at its cap, start one, or move the open one to a chunk with room. */
  private makeRoom(size: number): void {
    if (this.openCount > 0 && this.openBytes() + size > this.timing.maxBatchBytes) this.sealOpen();
    if (this.openCount === 0) {
      if (this.offset + PREFIX_RESERVE_BYTES + size > this.chunk.length) {
        this.setChunk(this.takeChunk(PREFIX_RESERVE_BYTES + size));
        this.offset = 0;
      }
      this.batchStart = this.offset;
      this.offset += PREFIX_RESERVE_BYTES;
      return;
    }
    if (this.offset + size <= this.chunk.length) return;
    // The open batch moves to a fresh chunk: a batch is one contiguous view.
    const used = this.offset - this.batchStart;
    const next = this.takeChunk(2 * (used + size));
    this.chunk.copy(next.buf, 0, this.batchStart, this.offset);
    this.setChunk(next);
    this.batchStart = 0;
    this.offset = used;
  }

  private setChunk(next: Chunk): void {
    const old = this.chunkRef;
    this.chunkRef = next;
    this.chunk = next.buf;
    this.view = next.view;
    if (old.batches === 0) this.recycle(old);
  }

  private added(): number {
    const lsn = ++this.lastLsnValue;
    if (this.openCount === 0) this.openFirstLsn = lsn;
    this.openCount++;
    if (!this.immediateScheduled) {
      this.immediateScheduled = true;
      setImmediate(this.onImmediate);
    }
    return lsn;
  }

  private readonly onImmediate = (): void => {
    this.immediateScheduled = false;
    // The common case stays on the fast path: write this turn's batch now.
    if (this.pumping || this.failure !== null || this.state !== 'open' || this.rotation !== null) this.kick();
    else this.flush(false);
  };

  /** Close the open batch: prefix it with its annotation (and a `#TS:` line when the second changed). */
  private sealOpen(): void {
    assert(this.openCount > 0, 'seal an empty batch');
    const recordsStart = this.batchStart + PREFIX_RESERVE_BYTES;
    const records = this.chunk.subarray(recordsStart, this.offset);
    const ms = Math.max(0, Math.floor(this.clock.nowMs()));
    const annotation: BatchAnnotation = {
      lsn: this.openFirstLsn,
      count: this.openCount,
      bytes: records.length,
      crc: crc32c(records),
      ms,
    };
    let start = recordsStart - batchAnnotationBytes(annotation);
    writeBatchAnnotation(this.chunk, start, annotation);
    if (this.timestamps) {
      const second = Math.floor(ms / 1000);
      if (second > this.lastTimestampSec) {
        const ts = encodeTimestamp(second);
        start -= ts.length;
        ts.copy(this.chunk, start);
        this.lastTimestampSec = second;
      }
    }
    assert(start >= this.batchStart, 'batch prefix fits its reserve');
    const batch: Batch = {
      firstLsn: this.openFirstLsn,
      lastLsn: this.openFirstLsn + this.openCount - 1,
      bytes: this.chunk.subarray(start, this.offset),
      chunk: this.chunkRef,
      endOffset: -1,
      written: this.openWritten,
      fsynced: this.openFsynced,
    };
    this.chunkRef.batches++;
    this.unwritten.push(batch);
    this.unwrittenBytes += batch.bytes.length;
    this.openCount = 0;
    this.openWritten = null;
    this.openFsynced = null;
    this.batchStart = this.offset;
  }

  // --- flushing: writes on this thread, fsyncs in the thread pool ---------------------------

  /**
   * Seal the open batch and write every sealed batch with write(2) on this
   * thread, then start an fdatasync if one is due. Writes go on while an
   * fdatasync is in flight (it covers what was written before it started),
   * so under `always` the next fdatasync starts the moment the previous one
   * returns. Not here: everysec's postponement behind a pending fsync, a
   * rotation's boundary, and a standing failure (unless `retry`, the pump's
   * retry round) hold the writes. Returns false when it failed or held.
   */
  private flush(retry: boolean): boolean {
    if (this.state === 'closed' || this.holdForRotation) return false;
    if (this.failure !== null && !retry) return false;
    const hasWork = this.openCount > 0 || this.unwritten.length > 0;
    if (hasWork && this.policy === 'everysec' && this.fsyncInFlight && this.state === 'open') {
      // Redis: a write() behind a pending fsync may block; wait up to 2 s for it, then write anyway.
      const now = performance.now();
      if (this.postponeStartMs === 0) this.postponeStartMs = now;
      const waited = now - this.postponeStartMs;
      if (waited < this.timing.maxFsyncPostponeMs) {
        if (this.postponeTimer === null) {
          this.postponeTimer = setTimeout(
            () => {
              this.postponeTimer = null;
              this.kick();
            },
            this.timing.maxFsyncPostponeMs - waited + 1,
          );
        }
        return false;
      }
      this.delayedFsyncCount++;
      this.logger.warn(
        { file: this.fileName },
        'Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down aofq.',
      );
    }
    this.postponeStartMs = 0;
    this.clearTimer('postponeTimer');
    if (this.openCount > 0) this.sealOpen();
    if (this.unwritten.length > 0 && !this.writeUnwritten()) return false;
    this.startFsyncIfDue();
    if (this.policy === 'everysec' && this.fileSize > this.durableSize) this.armEverysec();
    return true;
  }

  /** Start an fdatasync when something written is not durable and a reason asks for one now. */
  private startFsyncIfDue(): void {
    if (this.fsyncInFlight || this.fileSize <= this.durableSize || this.state === 'closed') return;
    const due =
      this.policy === 'always' ||
      this.failure?.needsFsync === true ||
      this.syncRequestedLsn > this.fsyncedLsnValue ||
      this.state === 'closing' ||
      this.rotation !== null;
    if (due) this.startFsync();
  }

  /**
   * One fdatasync in the thread pool, covering everything written before it
   * starts. Exactly one is in flight at a time: a second one on the same
   * descriptor could consume the error of a writeback that the first one's
   * range needed (Linux reports a writeback error once per open file), and a
   * success could then be trusted that should not be.
   */
  private startFsync(): void {
    assert(!this.fsyncInFlight, 'one fsync in flight');
    const target = { size: this.fileSize, lsn: this.writtenLsnValue };
    const epoch = this.failureEpoch;
    this.fsyncInFlight = true;
    this.clearTimer('everysecTimer');
    this.lastFsyncStartMs = performance.now();
    const started = this.lastFsyncStartMs;
    this.file.datasync().then(
      () => {
        this.fsyncInFlight = false;
        this.lastFsyncLatencyUsValue = Math.round((performance.now() - started) * 1000);
        this.onFsync?.(this.lastFsyncLatencyUsValue);
        // After a failed fsync nothing unsynced is trusted until it is written again: not even this
        // success. A write error that arrived meanwhile does not touch what this fsync covered.
        const f = this.failure;
        const trusted = f === null || (!f.needsRewind && (this.failureEpoch === epoch || !f.needsFsync));
        if (trusted) {
          // Recovered before any waiter runs: a waiter sees the engine writable again.
          const clean = f !== null && this.failureEpoch === epoch && f.truncateTo === null;
          if (clean && this.unwritten.length === 0 && this.openCount === 0) this.recovered();
          this.fsynced(target);
        }
        this.afterFsync();
      },
      (err: unknown) => {
        this.fsyncInFlight = false;
        this.enterFailure('fsync', asErrno(err), null);
        this.afterFsync();
      },
    );
  }

  /** An fsync returned: held writes may go, another fsync may be due, the pump may finish a rotation or close. */
  private afterFsync(): void {
    if (this.pumping || this.failure !== null || this.state !== 'open' || this.rotation !== null) {
      this.kick();
      return;
    }
    if (this.openCount > 0 || this.unwritten.length > 0) this.flush(false);
    else this.startFsyncIfDue();
    if (this.policy === 'everysec' && this.fileSize > this.durableSize) this.armEverysec();
  }

  // --- the pump: retries, rotation and close ------------------------------------------------

  private kick(): void {
    if (this.pumping) {
      this.kickAgain = true;
      return;
    }
    if (this.state === 'closed') return;
    this.pumping = true;
    this.pump().then(
      () => {
        this.pumping = false;
        if (this.kickAgain) this.kick();
      },
      (err: unknown) => {
        // A bug (an assertion). Refuse further writes rather than guess.
        this.pumping = false;
        this.logger.error({ err: String(err), stack: (err as Error)?.stack }, 'AOF writer loop crashed');
        this.enterFailure('write', errnoError('EFAULT', `internal error: ${String(err)}`), null);
      },
    );
  }

  /**
   * The slow paths, one at a time: a retry after an error (cut the file,
   * write again), a rotation (flush and fsync the old file, switch), a close.
   * It waits for nothing but its own steps; an fsync's return kicks it again.
   */
  private async pump(): Promise<void> {
    // Each round either makes progress or returns; the bound guards against a bug spinning.
    for (let round = 0; round < 1_000_000_000; round++) {
      this.kickAgain = false;
      if (this.state === 'closed') return;
      if (this.closeFailure !== null) {
        if (this.fsyncInFlight) return;
        await this.finishClose(this.closeFailure);
        return;
      }
      let retry = false;
      if (this.failure !== null) {
        if (!this.retryDue || this.fsyncInFlight) return;
        this.retryDue = false;
        if (!(await this.prepareRetry())) return;
        retry = true;
      }
      const flushed = this.flush(retry);
      if (this.failure !== null) {
        // The retry's writes went through: with nothing left to fsync, the write error is behind us.
        if (flushed && this.recoversWithoutFsync() && this.unwritten.length === 0) this.recovered();
        else return;
      }
      if (!flushed && !this.holdForRotation) return;

      if (this.rotation !== null) {
        // The boundary: what is written now goes to the old file; later appends wait for the new one.
        this.holdForRotation = true;
        if (this.fsyncInFlight) return;
        if (this.fileSize > this.durableSize) {
          this.startFsync();
          return;
        }
        await this.switchFile(this.rotation);
        continue;
      }
      if (this.state === 'closing') {
        if (this.fsyncInFlight) return;
        if (this.openCount > 0 || this.unwritten.length > 0) continue;
        if (this.fileSize > this.durableSize) {
          this.startFsync();
          return;
        }
        await this.finishClose(null);
        return;
      }
      if (!this.kickAgain) return;
    }
    assert(false, 'AOF pump round bound');
  }

  /** Write the sealed batches in order, each in one write() (completed if short). False on error. */
  private writeUnwritten(): boolean {
    for (let i = 0; this.unwritten.length > 0; i++) {
      const batch = this.unwritten.peek() as Batch;
      const bytes = batch.bytes;
      const start = this.fileSize;
      let done = 0;
      try {
        // Each pass writes at least one byte or throws.
        for (let pass = 0; done < bytes.length; pass++) {
          assert(pass <= bytes.length, 'short-write loop bound');
          const n = this.file.writeSync(done === 0 ? bytes : bytes.subarray(done));
          if (!(n > 0)) throw errnoError('ENOSPC', `short write: wrote 0 of ${bytes.length - done} bytes`);
          done += n;
        }
      } catch (err) {
        let truncateTo: number | null = null;
        if (done > 0) {
          // Never leave half a batch: cut back to the end of the last complete one.
          try {
            this.file.truncateSync(start);
          } catch (truncateErr) {
            this.logger.error(
              { file: this.fileName, size: start, err: String(truncateErr) },
              'Could not remove half-written data from the end of the AOF; will retry',
            );
            truncateTo = start;
          }
        }
        this.enterFailure('write', asErrno(err), truncateTo);
        return false;
      }
      this.unwritten.shift();
      this.unwrittenBytes -= bytes.length;
      this.fileSize = start + bytes.length;
      this.bytesWrittenValue += bytes.length;
      batch.endOffset = this.fileSize;
      this.writtenLsnValue = batch.lastLsn;
      if (this.policy === 'no') {
        // Not kept: `no` promises nothing, and memory stays bounded.
        if (this.retained.length > 0) this.releaseRetained();
        if (batch.fsynced !== null) this.lsnWaiters.push({ lsn: batch.lastLsn, done: batch.fsynced });
        this.releaseBytes(batch);
        this.rebuildableFrom = this.fileSize;
      } else {
        this.retained.push(batch);
      }
      // Recovered before any waiter runs: a waiter sees the engine writable again.
      if (this.failure !== null && this.unwritten.length === 0 && this.recoversWithoutFsync())
        this.recovered();
      const written = batch.written;
      batch.written = null;
      written?.resolve();
      assert(i < 1_000_000_000, 'write loop bound');
    }
    return true;
  }

  private releaseRetained(): void {
    for (const b of this.retained.drain()) {
      if (b.fsynced !== null) this.lsnWaiters.push({ lsn: b.lastLsn, done: b.fsynced });
      this.releaseBytes(b);
    }
  }

  /**
   * A batch's bytes are no longer needed (written under `no`, or covered by an fdatasync). When
   * its chunk holds no other live batch and the encoder has moved past it, the chunk is reused.
   */
  private releaseBytes(b: Batch): void {
    assert(b.bytes.length > 0 && b.chunk.batches > 0, 'a batch is released once');
    b.bytes = NO_BYTES;
    b.chunk.batches--;
    if (b.chunk.batches === 0 && b.chunk !== this.chunkRef) this.recycle(b.chunk);
  }

  /**
   * Arena chunks are reused, not left to the garbage collector. Under everysec a second of
   * writes is retained until its fdatasync (to write it again if that fails), tens of MiB at
   * load, and V8 answered that much external memory coming and going with a full mark-compact
   * several times a second (27 in a million queue cycles; 3 under appendfsync no, which retains
   * nothing). A chunk of the standard size goes to the spares, up to arenaSpareBytes; a larger
   * one (a batch bigger than a chunk) is left to the collector.
   */
  private recycle(chunk: Chunk): void {
    assert(
      chunk.batches === 0 && !chunk.spare && chunk !== this.chunkRef,
      'only a chunk no batch needs is reused',
    );
    const size = chunk.buf.length;
    if (size !== this.timing.arenaChunkBytes) return;
    if ((this.spareChunks.length + 1) * size > this.timing.arenaSpareBytes) return;
    chunk.spare = true;
    this.spareChunks.push(chunk);
    if (this.spareTimer === null && this.state !== 'closed') {
      this.spareTimer = setTimeout(this.trimSpares, this.timing.arenaSpareTrimMs);
      this.spareTimer.unref();
    }
  }

  /** A chunk with room for `size` bytes: a spare one when it is large enough, else a new one. */
  private takeChunk(size: number): Chunk {
    this.chunksTaken++;
    this.chunksTakenTotal++;
    if (size <= this.timing.arenaChunkBytes) {
      const spare = this.spareChunks.pop();
      if (spare !== undefined) {
        assert(spare.spare && spare.batches === 0, 'a spare chunk holds no batch');
        spare.spare = false;
        return spare;
      }
    }
    this.chunksAllocated++;
    return newChunk(Math.max(this.timing.arenaChunkBytes, size));
  }

  /**
   * Every arenaSpareTrimMs while there are spares: keep as many as the writer took in that time, so
   * that a writer under load keeps what it reuses and an idle one gives them all back.
   */
  private readonly trimSpares = (): void => {
    this.spareTimer = null;
    const keep = Math.min(this.spareChunks.length, this.chunksTaken);
    this.chunksTaken = 0;
    if (keep < this.spareChunks.length) this.spareChunks.length = keep;
    if (keep > 0 && this.state !== 'closed') {
      this.spareTimer = setTimeout(this.trimSpares, this.timing.arenaSpareTrimMs);
      this.spareTimer.unref();
    }
  };

  private fsynced(target: { size: number; lsn: number }): void {
    if (target.size > this.durableSize) this.durableSize = target.size;
    if (target.lsn > this.fsyncedLsnValue) this.fsyncedLsnValue = target.lsn;
    for (
      let b = this.retained.peek();
      b !== undefined && b.endOffset <= target.size;
      b = this.retained.peek()
    ) {
      this.retained.shift();
      this.releaseBytes(b);
      b.fsynced?.resolve();
      b.fsynced = null;
    }
    if (this.rebuildableFrom < this.durableSize) this.rebuildableFrom = this.durableSize;
    if (this.lsnWaiters.length > 0) {
      const lsn = this.fsyncedLsnValue;
      const still: Array<{ lsn: number; done: Deferred }> = [];
      for (const w of this.lsnWaiters) {
        if (w.lsn <= lsn) w.done.resolve();
        else still.push(w);
      }
      this.lsnWaiters = still;
    }
  }

  // --- everysec -------------------------------------------------------------------------

  private armEverysec(): void {
    if (this.everysecTimer !== null || this.fsyncInFlight || this.state !== 'open') return;
    const delay = Math.max(0, this.lastFsyncStartMs + this.timing.everysecIntervalMs - performance.now());
    this.everysecTimer = setTimeout(this.onEverysec, delay);
    if (this.fsyncWaiters === 0) this.everysecTimer.unref();
  }

  private readonly onEverysec = (): void => {
    this.everysecTimer = null;
    if (this.policy !== 'everysec' || this.state !== 'open' || this.failure !== null || this.fsyncInFlight)
      return;
    if (this.fileSize <= this.durableSize) return;
    this.startFsync();
  };

  // --- errors -----------------------------------------------------------------------------

  private enterFailure(kind: 'write' | 'fsync', err: NodeJS.ErrnoException, truncateTo: number | null): void {
    // Node's fs messages start with the code ("ENOSPC: no space left on device, write").
    const reason = err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
    this.lastWriteErrorValue = reason;
    if (this.failure === null) {
      this.failure = { error: err, needsRewind: false, truncateTo: null, needsFsync: false };
    }
    this.failureEpoch++;
    const f = this.failure;
    f.error = err;
    if (kind === 'fsync') {
      f.needsRewind = true;
      f.needsFsync = true;
    }
    if (truncateTo !== null) f.truncateTo = truncateTo;
    const now = performance.now();
    if (now - this.lastErrorLogMs >= this.timing.writeErrorLogMs) {
      this.lastErrorLogMs = now;
      this.logger.error(
        { file: this.fileName, op: kind, code: err.code, err: err.message },
        kind === 'write'
          ? 'Error writing to the AOF file; refusing writes until the disk accepts them again'
          : 'Fail to fsync the AOF file; refusing writes, will rewrite what is not durable',
      );
    }
    if (this.rotation !== null) {
      const r = this.rotation;
      this.rotation = null;
      this.holdForRotation = false;
      r.done.reject(this.writeFailedError());
    }
    if (this.state === 'closed') return;
    if (this.state === 'closing') {
      // The pump ends the close, once no operation of its own is in flight.
      this.closeFailure = this.writeFailedError();
      this.kick();
      return;
    }
    if (this.retryTimer === null) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.retryDue = true;
        this.kick();
      }, this.timing.writeRetryMs);
    }
  }

  /** Before writing again after an error: rewind what an fsync may have lost, cut any half batch. */
  private async prepareRetry(): Promise<boolean> {
    const f = this.failure as Failure;
    if (f.needsRewind) {
      const target = Math.max(this.durableSize, this.rebuildableFrom);
      const again = this.retained.drain();
      const first = again[0];
      if (first !== undefined) {
        assert(
          first.endOffset - first.bytes.length === target,
          'retained batches start where durability ends',
        );
        this.writtenLsnValue = first.firstLsn - 1;
        for (const b of again) {
          b.endOffset = -1;
          b.written = null;
          this.unwrittenBytes += b.bytes.length;
        }
        this.unwritten.prepend(again);
      }
      if (target > this.durableSize) {
        this.logger.warn(
          { file: this.fileName, from: this.durableSize, to: target },
          'After an fsync error, data written under appendfsync no cannot be rewritten and may be lost',
        );
      }
      f.needsRewind = false;
      f.truncateTo = target;
    }
    if (f.truncateTo !== null) {
      const size = f.truncateTo;
      try {
        await this.file.truncate(size);
      } catch (err) {
        this.enterFailure('write', asErrno(err), size);
        return false;
      }
      this.bytesWrittenValue -= this.fileSize - size;
      this.fileSize = size;
      f.truncateTo = null;
    }
    return true;
  }

  /** After a write error (not an fsync error), outside `always`, a successful write is the recovery. */
  private recoversWithoutFsync(): boolean {
    const f = this.failure;
    return f !== null && !f.needsFsync && !f.needsRewind && f.truncateTo === null && this.policy !== 'always';
  }

  private recovered(): void {
    this.failure = null;
    this.clearTimer('retryTimer');
    this.retryDue = false;
    this.logger.warn({ file: this.fileName }, 'AOF write error looks solved, aofq can write again.');
  }

  // --- rotation and close --------------------------------------------------------------------

  private async switchFile(rotation: Rotation): Promise<void> {
    assert(this.retained.length === 0 && this.unwritten.length === 0, 'rotation after a full flush');
    assert(this.fsyncedLsnValue === this.writtenLsnValue, 'rotation after fsync');
    this.rotation = null;
    let next: RotatedFile;
    try {
      next = await rotation.prepare(this.writtenLsnValue);
    } catch (err) {
      this.holdForRotation = false;
      rotation.done.reject(err);
      return;
    }
    const old = this.file;
    this.file = next.file;
    this.fileName = next.fileName;
    this.fileSize = next.size;
    this.durableSize = next.size;
    this.rebuildableFrom = next.size;
    this.lastFsyncStartMs = performance.now();
    this.holdForRotation = false;
    rotation.done.resolve();
    try {
      await old.close();
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'Closing the previous AOF file failed');
    }
  }

  private async finishClose(error: AofqError | null): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const name of ['everysecTimer', 'postponeTimer', 'retryTimer', 'spareTimer'] as const)
      this.clearTimer(name);
    this.spareChunks.length = 0;
    if (error !== null) {
      this.closeError = error;
      this.openWritten?.reject(error);
      this.openFsynced?.reject(error);
      for (const queue of [this.unwritten, this.retained]) {
        for (const b of queue) {
          b.written?.reject(error);
          b.fsynced?.reject(error);
        }
      }
      for (const w of this.lsnWaiters) w.done.reject(error);
      this.lsnWaiters = [];
    }
    try {
      await this.file.close();
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'Closing the AOF file failed');
    }
    const done = this.closeDone as Deferred;
    if (error === null) done.resolve();
    else done.reject(error);
  }

  private clearTimer(name: 'everysecTimer' | 'postponeTimer' | 'retryTimer' | 'spareTimer'): void {
    const t = this[name];
    if (t !== null) {
      clearTimeout(t);
      this[name] = null;
    }
  }
}
