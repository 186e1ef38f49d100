/**
 * The RESP2 decoder: a resumable state machine over a stream of byte chunks.
 * The AOF loader, the check tool, the RESP port and the replication stream
 * read through it. It owns: framing (lines, bulk payloads, nested arrays),
 * AOF annotation lines (`#...`), inline commands (server mode), the protocol
 * limits, and exact absolute byte offsets for every event and every error.
 *
 * Memory: pushed chunks are kept in a list and never concatenated as a whole.
 * Only a line that straddles chunks (at most maxLineBytes + 2 bytes) or a bulk
 * payload that straddles chunks (exactly its length) is copied. A length over
 * a limit is refused as soon as its line is read, before anything of that
 * size is allocated or awaited.
 *
 * Aliasing: `push` takes ownership of the chunk: do not modify it afterwards.
 * By default, bulk strings that lie inside one pushed chunk are returned as
 * views (`subarray`) of that chunk: a caller that keeps one for long pins the
 * whole chunk, so it should copy what it keeps, or set `copyBulks`, which
 * gives each command's payloads one fresh buffer of their own (about half
 * the speed of the aliasing path; see bench/resp.ts).
 */
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import { ErrorReply, type RespValue, SimpleString } from './types.js';

const CR = 0x0d;
const LF = 0x0a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MINUS = 0x2d;
const PLUS = 0x2b;
const COLON = 0x3a;
const DOLLAR = 0x24;
const STAR = 0x2a;
const HASH = 0x23;

/** A length line parses to at most this many digits before it is surely over any limit. */
const MAX_LENGTH_DIGITS = 16;
const EMPTY = Buffer.alloc(0);
/** Compact the chunk list once this many consumed slots sit at its front. */
const COMPACT_AFTER = 64;

export type RespErrorCode = 'AOFQ_ERR_RESP_PROTOCOL' | 'AOFQ_ERR_RESP_LIMIT';

/** Malformed input (AOFQ_ERR_RESP_PROTOCOL) or input over a limit (AOFQ_ERR_RESP_LIMIT). */
export class RespProtocolError extends AofqError {
  override name = 'RespProtocolError';
  /** Absolute stream offset of the offending line, byte or frame. */
  readonly offset: number;
  readonly reason: string;

  constructor(code: RespErrorCode, reason: string, offset: number) {
    super(code, { reason, offset });
    this.offset = offset;
    this.reason = reason;
  }
}

export interface DecoderOptions {
  /** Largest bulk string. Default LIMITS.respMaxBulkBytes. */
  maxBulkBytes?: number;
  /** Most elements in one array. Default LIMITS.respMaxArrayLength. */
  maxArrayLength?: number;
  /** Longest line, without its line ending. Default LIMITS.respMaxLineBytes. */
  maxLineBytes?: number;
  /** Deepest array nesting; a top-level array is depth 1. Default LIMITS.respMaxDepth. */
  maxDepth?: number;
  /** AOF mode: top-level lines starting with '#' are annotation events. */
  annotations?: boolean;
  /** Server mode: top-level lines not starting with a RESP type byte are inline commands. */
  inline?: boolean;
  /** Return bulk strings that never alias pushed chunks. Default false (views, no copy). */
  copyBulks?: boolean;
  /** Absolute offset of the first byte that will be pushed. Default 0. */
  startOffset?: number;
}

/** One complete top-level RESP value. `start`/`end` are absolute offsets, `end` exclusive. */
export interface FrameEvent {
  kind: 'frame';
  value: RespValue;
  start: number;
  end: number;
}

/** An AOF annotation line; `text` is what follows '#', without the line ending, decoded as latin1. */
export interface AnnotationEvent {
  kind: 'annotation';
  text: string;
  start: number;
  end: number;
}

/** A command: a top-level array of bulk strings, or an inline command. argv may alias pushed chunks. */
export interface CommandEvent {
  kind: 'command';
  argv: Buffer[];
  start: number;
  end: number;
}

export type RespEvent = FrameEvent | AnnotationEvent;

interface OpenArray {
  items: RespValue[];
  remaining: number;
}

function isRespTypeByte(byte: number): boolean {
  return byte === PLUS || byte === MINUS || byte === COLON || byte === DOLLAR || byte === STAR;
}

function describeByte(byte: number): string {
  return byte >= 0x21 && byte <= 0x7e ? `'${String.fromCharCode(byte)}'` : `byte 0x${byte.toString(16)}`;
}

function positiveLimit(value: number | undefined, fallback: number, what: string): number {
  const limit = value ?? fallback;
  assert(Number.isSafeInteger(limit) && limit >= 1, `decoder option ${what} must be a positive integer`);
  return limit;
}

export class RespDecoder {
  private readonly maxBulkBytes: number;
  private readonly maxArrayLength: number;
  private readonly maxLineBytes: number;
  private readonly maxDepth: number;
  private readonly annotations: boolean;
  private readonly inline: boolean;
  private readonly copyBulks: boolean;

  // --- the bytes: a queue of chunks; `chunks[head]` from `position` is the next unparsed byte ---
  private chunks: Buffer[] = [];
  private head = 0;
  private position = 0;
  /** Unparsed bytes held, from `position` to the end of the last chunk. */
  private available = 0;
  /** Absolute offset of the next unparsed byte. */
  private parseOffset: number;
  /** Absolute offset just past the last returned event. */
  private eventOffset: number;

  // --- a line that straddles chunks: how far the search for LF has got, so no byte is scanned twice ---
  private scanChunk = -1;
  private scanLength = 0;

  // --- the last line read by readLine(): bytes lineBuffer[lineStart, lineEnd), plus its terminator ---
  private lineBuffer: Buffer = EMPTY;
  private lineStart = 0;
  private lineEnd = 0;
  private lineHasCR = false;
  private lineTotal = 0;

  // --- the frame being parsed ---
  private frameStart = 0;
  private frameCommandOnly = false;
  private readonly stack: OpenArray[] = [];
  /** Length of a bulk whose header was read and whose payload is awaited; -1 when none. */
  private pendingBulk = -1;

  private failure: RespProtocolError | undefined;

  constructor(options: DecoderOptions = {}) {
    this.maxBulkBytes = positiveLimit(options.maxBulkBytes, LIMITS.respMaxBulkBytes, 'maxBulkBytes');
    this.maxArrayLength = positiveLimit(options.maxArrayLength, LIMITS.respMaxArrayLength, 'maxArrayLength');
    this.maxLineBytes = positiveLimit(options.maxLineBytes, LIMITS.respMaxLineBytes, 'maxLineBytes');
    this.maxDepth = positiveLimit(options.maxDepth, LIMITS.respMaxDepth, 'maxDepth');
    this.annotations = options.annotations ?? false;
    this.inline = options.inline ?? false;
    this.copyBulks = options.copyBulks ?? false;
    const start = options.startOffset ?? 0;
    assert(Number.isSafeInteger(start) && start >= 0, 'decoder startOffset');
    this.parseOffset = start;
    this.eventOffset = start;
  }

  /** Absolute offset just past the last returned event: where an incomplete frame, if any, starts. */
  get offset(): number {
    return this.eventOffset;
  }

  /** Bytes pushed past `offset`: those of an incomplete frame and any not looked at yet. */
  get buffered(): number {
    return this.parseOffset + this.available - this.eventOffset;
  }

  /** Append bytes. The decoder keeps a reference to `chunk`; the caller must not modify it afterwards. */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.available += chunk.length;
  }

  /** The next complete frame or annotation, or undefined when more bytes are needed. */
  next(): RespEvent | undefined {
    if (this.failure) throw this.failure;
    try {
      return this.parse(false) as RespEvent | undefined;
    } catch (error) {
      throw this.poison(error);
    }
  }

  /**
   * The next command (an array of bulk strings, or an inline command in server
   * mode) or annotation, or undefined when more bytes are needed. Any other
   * top-level frame is a protocol error. `*0` and `*-1` give an empty argv
   * (the server skips it; the AOF loader refuses it).
   */
  nextCommand(): CommandEvent | AnnotationEvent | undefined {
    if (this.failure) throw this.failure;
    try {
      if (this.stack.length === 0 && this.pendingBulk < 0 && this.available > 0) {
        const chunk = this.chunks[this.head]!;
        if (chunk[this.position] === STAR) {
          const fast = this.fastCommand(chunk);
          if (fast) return fast;
        }
      }
      const event = this.parse(true);
      if (event === undefined || event.kind !== 'frame') return event;
      return this.toCommand(event);
    } catch (error) {
      throw this.poison(error);
    }
  }

  private poison(error: unknown): unknown {
    if (error instanceof RespProtocolError) this.failure = error;
    return error;
  }

  private fail(reason: string, offset: number): never {
    throw new RespProtocolError('AOFQ_ERR_RESP_PROTOCOL', reason, offset);
  }

  private failLimit(reason: string, offset: number): never {
    throw new RespProtocolError('AOFQ_ERR_RESP_LIMIT', reason, offset);
  }

  private toCommand(event: FrameEvent | CommandEvent): CommandEvent {
    if (event.kind === 'command') return event;
    const value = event.value;
    if (value === null) return { kind: 'command', argv: [], start: event.start, end: event.end };
    if (Array.isArray(value) && value.every((item) => Buffer.isBuffer(item))) {
      return { kind: 'command', argv: value as Buffer[], start: event.start, end: event.end };
    }
    // Only reachable when next() began the frame and nextCommand() finished it.
    return this.fail('expected an array of bulk strings', event.start);
  }

  /**
   * A command that lies wholly inside the first chunk, in canonical form, in
   * one pass with no intermediate state. Anything else (incomplete, malformed,
   * over a limit) returns undefined having consumed nothing, and the general
   * parser takes over and gives the exact event or error.
   */
  private fastCommand(chunk: Buffer): CommandEvent | undefined {
    const end = chunk.length;
    let p = this.position + 1;
    // The element count.
    let count = 0;
    let digits = 0;
    for (;;) {
      if (p >= end) return undefined;
      const byte = chunk[p]!;
      if (byte === CR) break;
      if (byte < DIGIT_0 || byte > DIGIT_9 || digits === MAX_LENGTH_DIGITS) return undefined;
      count = count * 10 + (byte - DIGIT_0);
      digits++;
      p++;
    }
    if (digits === 0 || (digits > 1 && chunk[this.position + 1] === DIGIT_0)) return undefined;
    if (digits + 1 > this.maxLineBytes) return undefined;
    if (p + 1 >= end || chunk[p + 1] !== LF) return undefined;
    p += 2;
    if (count === 0 || count > this.maxArrayLength) return undefined;
    const argv: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (p >= end || chunk[p] !== DOLLAR) return undefined;
      const digitsStart = ++p;
      let length = 0;
      for (;;) {
        if (p >= end) return undefined;
        const byte = chunk[p]!;
        if (byte === CR) break;
        if (byte < DIGIT_0 || byte > DIGIT_9 || p - digitsStart === MAX_LENGTH_DIGITS) return undefined;
        length = length * 10 + (byte - DIGIT_0);
        p++;
      }
      if (p === digitsStart || (p - digitsStart > 1 && chunk[digitsStart] === DIGIT_0)) return undefined;
      if (length > this.maxBulkBytes || p - digitsStart + 1 > this.maxLineBytes) return undefined;
      const payloadStart = p + 2;
      const payloadEnd = payloadStart + length;
      if (payloadEnd + 2 > end || chunk[p + 1] !== LF) return undefined;
      if (chunk[payloadEnd] !== CR || chunk[payloadEnd + 1] !== LF) return undefined;
      argv.push(chunk.subarray(payloadStart, payloadEnd));
      p = payloadEnd + 2;
    }
    if (this.copyBulks) copyArgv(argv);
    const start = this.parseOffset;
    this.consume(p - this.position);
    this.eventOffset = this.parseOffset;
    return { kind: 'command', argv, start, end: this.parseOffset };
  }

  /** The general, resumable parser. Every iteration consumes bytes or returns. */
  private parse(commandOnly: boolean): RespEvent | CommandEvent | undefined {
    for (;;) {
      let value: RespValue;
      if (this.pendingBulk >= 0) {
        const payload = this.readBulkPayload(this.pendingBulk);
        if (payload === undefined) return undefined;
        this.pendingBulk = -1;
        value = payload;
      } else {
        const lineOffset = this.parseOffset;
        if (!this.readLine(lineOffset)) return undefined;
        const line = this.lineBuffer;
        const type = line[this.lineStart]!;
        const depth = this.stack.length;
        if (depth === 0) {
          this.frameStart = lineOffset;
          this.frameCommandOnly = commandOnly;
          if (this.annotations && type === HASH) {
            const text = line.toString('latin1', this.lineStart + 1, this.lineEnd);
            this.consume(this.lineTotal);
            this.eventOffset = this.parseOffset;
            return { kind: 'annotation', text, start: lineOffset, end: this.parseOffset };
          }
          if (this.inline && !isRespTypeByte(type)) {
            const argv = splitInline(line, this.lineStart, this.lineEnd);
            if (argv === null) this.fail('unbalanced quotes in request', lineOffset);
            this.consume(this.lineTotal);
            this.eventOffset = this.parseOffset;
            if (argv.length === 0) continue; // an empty line: skipped, as Redis does
            return commandOnly
              ? { kind: 'command', argv, start: lineOffset, end: this.parseOffset }
              : { kind: 'frame', value: argv, start: lineOffset, end: this.parseOffset };
          }
          if (this.frameCommandOnly && type !== STAR) {
            this.fail(`expected '*', got ${describeByte(type)}`, lineOffset);
          }
        } else if (this.frameCommandOnly && depth === 1 && type !== DOLLAR) {
          this.fail(`expected '$', got ${describeByte(type)}`, lineOffset);
        }
        if (!this.lineHasCR && isRespTypeByte(type)) this.fail('line not ended by CRLF', lineOffset);
        switch (type) {
          case DOLLAR: {
            const length = this.parseLength(lineOffset, this.maxBulkBytes, 'bulk');
            this.consume(this.lineTotal);
            if (length < 0) {
              if (this.frameCommandOnly) this.fail('null bulk string in a command', lineOffset);
              value = null;
            } else {
              this.pendingBulk = length;
              continue;
            }
            break;
          }
          case STAR: {
            const length = this.parseLength(lineOffset, this.maxArrayLength, 'multibulk');
            if (length > 0 && depth + 1 > this.maxDepth) {
              this.failLimit(`arrays nested deeper than ${this.maxDepth}`, lineOffset);
            }
            this.consume(this.lineTotal);
            if (length < 0) {
              value = null;
            } else if (length === 0) {
              value = [];
            } else {
              this.stack.push({ items: [], remaining: length });
              continue;
            }
            break;
          }
          case PLUS:
          case MINUS: {
            const text = this.lineText(lineOffset);
            this.consume(this.lineTotal);
            value = type === PLUS ? new SimpleString(text) : new ErrorReply(text);
            break;
          }
          case COLON: {
            value = this.parseInteger(lineOffset);
            this.consume(this.lineTotal);
            break;
          }
          default:
            this.fail(`invalid type byte ${describeByte(type)}`, lineOffset);
        }
      }
      // Deliver the value to the innermost open array, closing arrays that are full.
      for (;;) {
        const top = this.stack[this.stack.length - 1];
        if (top === undefined) {
          this.eventOffset = this.parseOffset;
          return { kind: 'frame', value, start: this.frameStart, end: this.parseOffset };
        }
        top.items.push(value);
        if (--top.remaining > 0) break;
        this.stack.pop();
        value = top.items;
      }
    }
  }

  /** Parse the digits of a `$` or `*` line: -1 (null) or 0..limit. */
  private parseLength(lineOffset: number, limit: number, what: string): number {
    const line = this.lineBuffer;
    let p = this.lineStart + 1;
    const end = this.lineEnd;
    if (p + 2 === end && line[p] === MINUS && line[p + 1] === DIGIT_0 + 1) return -1;
    if (p === end || (end - p > 1 && line[p] === DIGIT_0)) this.fail(`invalid ${what} length`, lineOffset);
    let value = 0;
    for (; p < end; p++) {
      const byte = line[p]!;
      if (byte < DIGIT_0 || byte > DIGIT_9) this.fail(`invalid ${what} length`, lineOffset);
      value = value * 10 + (byte - DIGIT_0);
    }
    if (value > limit) {
      const shown = end - this.lineStart - 1 > MAX_LENGTH_DIGITS ? 'with too many digits' : String(value);
      this.failLimit(`${what} length ${shown} is over the limit of ${limit}`, lineOffset);
    }
    return value;
  }

  /** Parse a `:` line: a signed 64-bit integer in canonical form; a bigint beyond 2^53. */
  private parseInteger(lineOffset: number): number | bigint {
    const line = this.lineBuffer;
    const start = this.lineStart + 1;
    const end = this.lineEnd;
    let p = start;
    const negative = line[p] === MINUS;
    if (negative) p++;
    const digits = end - p;
    if (digits === 0 || digits > 19 || (line[p] === DIGIT_0 && (digits > 1 || negative))) {
      this.fail('invalid integer', lineOffset);
    }
    let value = 0;
    for (let i = p; i < end; i++) {
      const byte = line[i]!;
      if (byte < DIGIT_0 || byte > DIGIT_9) this.fail('invalid integer', lineOffset);
      value = value * 10 + (byte - DIGIT_0);
    }
    if (value <= Number.MAX_SAFE_INTEGER) return negative ? -value : value;
    const big = BigInt(line.toString('latin1', start, end));
    if (big > 9223372036854775807n || big < -9223372036854775808n)
      this.fail('integer out of range', lineOffset);
    return big;
  }

  /** The text of a `+` or `-` line; a CR inside it is malformed. */
  private lineText(lineOffset: number): string {
    const line = this.lineBuffer;
    const cr = line.indexOf(CR, this.lineStart);
    if (cr !== -1 && cr < this.lineEnd) this.fail('CR inside a simple string or error', lineOffset);
    return line.toString('utf8', this.lineStart + 1, this.lineEnd);
  }

  /**
   * Find the line at the parse position. On success set lineBuffer, lineStart,
   * lineEnd (without the terminator), lineHasCR and lineTotal (with it), and
   * consume nothing. Lines end at LF; a CR just before it is part of the
   * terminator. A line longer than maxLineBytes is refused as soon as that is
   * certain, complete or not.
   */
  private readLine(lineOffset: number): boolean {
    if (this.available === 0) return false;
    const chunk = this.chunks[this.head]!;
    if (this.scanChunk < 0) {
      const lf = chunk.indexOf(LF, this.position);
      if (lf !== -1) {
        this.setLine(chunk, this.position, lf, lineOffset);
        return true;
      }
      this.scanChunk = this.head + 1;
      this.scanLength = chunk.length - this.position;
      this.checkPartialLine(lineOffset);
    }
    // The line straddles chunks: continue the search where the last call stopped.
    while (this.scanChunk < this.chunks.length) {
      const next = this.chunks[this.scanChunk]!;
      const lf = next.indexOf(LF);
      if (lf === -1) {
        this.scanLength += next.length;
        this.scanChunk++;
        this.checkPartialLine(lineOffset);
        continue;
      }
      const total = this.scanLength + lf + 1;
      const copy = Buffer.allocUnsafe(total);
      this.copyOut(copy, total);
      this.setLine(copy, 0, total - 1, lineOffset);
      return true;
    }
    return false;
  }

  private checkPartialLine(lineOffset: number): void {
    // Even if the next byte is the LF, the line holds at least scanLength - 1 bytes before a CR.
    if (this.scanLength - 1 > this.maxLineBytes) {
      this.failLimit(`line longer than ${this.maxLineBytes} bytes`, lineOffset);
    }
  }

  private setLine(buffer: Buffer, start: number, lf: number, lineOffset: number): void {
    const hasCR = lf > start && buffer[lf - 1] === CR;
    const end = hasCR ? lf - 1 : lf;
    if (end - start > this.maxLineBytes)
      this.failLimit(`line longer than ${this.maxLineBytes} bytes`, lineOffset);
    if (end === start) {
      // An empty line: only an inline (server) decoder at the top level accepts it.
      if (!(this.inline && this.stack.length === 0 && this.pendingBulk < 0))
        this.fail('empty line', lineOffset);
    }
    this.lineBuffer = buffer;
    this.lineStart = start;
    this.lineEnd = end;
    this.lineHasCR = hasCR;
    this.lineTotal = lf + 1 - start;
  }

  /** The payload of a bulk of `length` bytes plus its CRLF, or undefined if not all here yet. */
  private readBulkPayload(length: number): Buffer | undefined {
    if (this.available < length + 2) return undefined;
    const chunk = this.chunks[this.head]!;
    const start = this.position;
    let payload: Buffer;
    let cr: number | undefined;
    let lf: number | undefined;
    if (start + length + 2 <= chunk.length) {
      payload = chunk.subarray(start, start + length);
      if (this.copyBulks) payload = Buffer.from(payload);
      cr = chunk[start + length];
      lf = chunk[start + length + 1];
    } else {
      payload = Buffer.allocUnsafe(length);
      this.copyOut(payload, length);
      cr = this.peek(length);
      lf = this.peek(length + 1);
    }
    if (cr !== CR || lf !== LF) this.fail('bulk payload not followed by CRLF', this.parseOffset + length);
    this.consume(length + 2);
    return payload;
  }

  /** The byte `distance` bytes past the parse position; it must be buffered. */
  private peek(distance: number): number {
    let index = this.head;
    let at = this.position + distance;
    for (;;) {
      const chunk = this.chunks[index]!;
      if (at < chunk.length) return chunk[at]!;
      at -= chunk.length;
      index++;
    }
  }

  /** Copy the next `length` buffered bytes into `target`, consuming nothing. */
  private copyOut(target: Buffer, length: number): void {
    assert(length <= this.available, 'copy beyond the buffered bytes');
    let copied = 0;
    let index = this.head;
    let from = this.position;
    while (copied < length) {
      const chunk = this.chunks[index]!;
      copied += chunk.copy(target, copied, from, Math.min(chunk.length, from + length - copied));
      from = 0;
      index++;
    }
  }

  private consume(length: number): void {
    assert(length <= this.available, 'consume beyond the buffered bytes');
    this.available -= length;
    this.parseOffset += length;
    this.scanChunk = -1;
    let position = this.position + length;
    while (this.head < this.chunks.length && position >= this.chunks[this.head]!.length) {
      position -= this.chunks[this.head]!.length;
      this.chunks[this.head] = EMPTY;
      this.head++;
    }
    this.position = position;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * Replace views of pushed chunks by views of one fresh buffer holding all of
 * a command's payloads (from Node's pool when small, like Buffer.from).
 */
function copyArgv(argv: Buffer[]): void {
  let total = 0;
  for (const view of argv) total += view.length;
  const owned = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < argv.length; i++) {
    const view = argv[i]!;
    owned.set(view, at);
    argv[i] = owned.subarray(at, at + view.length);
    at += view.length;
  }
}

const SPACE = 0x20;
const TAB = 0x09;
const VTAB = 0x0b;
const FORMFEED = 0x0c;
const DOUBLE_QUOTE = 0x22;
const SINGLE_QUOTE = 0x27;
const BACKSLASH = 0x5c;

function isSpace(byte: number): boolean {
  return byte === SPACE || byte === TAB || byte === LF || byte === VTAB || byte === FORMFEED || byte === CR;
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= DIGIT_0 && byte <= DIGIT_9) return byte - DIGIT_0;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

const ESCAPES: Readonly<Record<number, number>> = {
  110: LF, // \n
  114: CR, // \r
  116: TAB, // \t
  98: 0x08, // \b
  97: 0x07, // \a
};

/**
 * Split an inline command into arguments, with the quoting that redis-cli and
 * Redis's inline parser accept: arguments are separated by whitespace; inside
 * "double quotes" the escapes \n \r \t \b \a \xHH and \<any> apply; inside
 * 'single quotes' only \' is an escape; a closing quote must be followed by
 * whitespace or the end of the line. Returns null for unbalanced quotes.
 * Inline commands are not the hot path: a loop over the bytes is fine here.
 */
export function splitInline(line: Buffer, start: number, end: number): Buffer[] | null {
  const argv: Buffer[] = [];
  let p = start;
  for (;;) {
    while (p < end && isSpace(line[p]!)) p++;
    if (p >= end) return argv;
    const bytes: number[] = [];
    let quote = 0;
    for (;;) {
      if (p >= end) {
        if (quote !== 0) return null;
        break;
      }
      const byte = line[p]!;
      if (quote === DOUBLE_QUOTE) {
        if (byte === BACKSLASH && p + 1 < end) {
          const escaped = line[p + 1]!;
          const high = hexValue(line[p + 2]);
          const low = hexValue(line[p + 3]);
          if (escaped === 0x78 && p + 3 < end && high >= 0 && low >= 0) {
            bytes.push(high * 16 + low);
            p += 4;
          } else {
            bytes.push(ESCAPES[escaped] ?? escaped);
            p += 2;
          }
          continue;
        }
        if (byte === DOUBLE_QUOTE) {
          if (p + 1 < end && !isSpace(line[p + 1]!)) return null;
          p++;
          break;
        }
        bytes.push(byte);
        p++;
      } else if (quote === SINGLE_QUOTE) {
        if (byte === BACKSLASH && line[p + 1] === SINGLE_QUOTE && p + 1 < end) {
          bytes.push(SINGLE_QUOTE);
          p += 2;
          continue;
        }
        if (byte === SINGLE_QUOTE) {
          if (p + 1 < end && !isSpace(line[p + 1]!)) return null;
          p++;
          break;
        }
        bytes.push(byte);
        p++;
      } else {
        if (byte === SPACE || byte === LF || byte === CR || byte === TAB) break;
        if (byte === DOUBLE_QUOTE || byte === SINGLE_QUOTE) quote = byte;
        else bytes.push(byte);
        p++;
      }
    }
    argv.push(Buffer.from(bytes));
  }
}
