/**
 * RESP2 encoding straight into Buffers. The AOF records, the replication
 * stream and the RESP port's replies are all written through RespWriter: one
 * growable buffer, no string concatenation, lengths written as ASCII digits.
 */
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import { ErrorReply, type RespValue, SimpleString } from './types.js';

const CRLF = 0x0d0a;
const INITIAL = 4096;
const EMPTY = Buffer.alloc(0);
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** A bulk string's content: bytes, UTF-8 text, or a number written as its decimal text. */
export type Arg = Buffer | string | number;

export class RespWriter {
  private buf: Buffer;
  private len = 0;
  /** Size of the next buffer after take(), which leaves the writer without one until it writes again. */
  private capacity: number;

  constructor(initialBytes = INITIAL) {
    assert(Number.isSafeInteger(initialBytes) && initialBytes >= 0, 'initial bytes');
    this.capacity = Math.max(initialBytes, 64);
    this.buf = initialBytes > 0 ? Buffer.allocUnsafe(initialBytes) : EMPTY;
  }

  get length(): number {
    return this.len;
  }

  private reserve(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    // Was an infinite loop for a zero-sized buffer; after take() the old capacity is reused.
    let size = this.buf.length === 0 ? this.capacity : this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private prefixed(prefix: number, n: number): void {
    // Longest: prefix + '-9007199254740991' + CRLF.
    this.reserve(24);
    this.buf[this.len++] = prefix;
    this.len += this.buf.write(String(n), this.len, 'latin1');
    this.buf.writeUInt16BE(CRLF, this.len);
    this.len += 2;
  }

  /** `*<n>\r\n`: the header of an array; the caller then writes n elements. */
  arrayHeader(n: number): this {
    assert(Number.isSafeInteger(n) && n >= 0, 'array length');
    this.prefixed(0x2a, n);
    return this;
  }

  /** `$<len>\r\n<bytes>\r\n` */
  bulk(value: Arg): this {
    if (typeof value === 'number') return this.bulk(String(value));
    if (typeof value === 'string') {
      const bytes = Buffer.byteLength(value);
      this.prefixed(0x24, bytes);
      this.reserve(bytes + 2);
      this.len += this.buf.write(value, this.len, 'utf8');
    } else {
      this.prefixed(0x24, value.length);
      this.reserve(value.length + 2);
      value.copy(this.buf, this.len);
      this.len += value.length;
    }
    this.buf.writeUInt16BE(CRLF, this.len);
    this.len += 2;
    return this;
  }

  /** A command or an AOF record: an array of bulk strings. */
  command(argv: readonly Arg[]): this {
    this.arrayHeader(argv.length);
    for (const arg of argv) this.bulk(arg);
    return this;
  }

  /** `+OK\r\n`. The text must not hold CR or LF. */
  simple(text: string): this {
    return this.line(0x2b, text);
  }

  /** `-ERR message\r\n`. CR and LF in the message are replaced by spaces, as Redis does. */
  error(text: string): this {
    return this.line(0x2d, text.replace(/[\r\n]+/g, ' '));
  }

  /** `:<n>\r\n` */
  integer(n: number | bigint): this {
    if (typeof n === 'bigint') {
      assert(n >= INT64_MIN && n <= INT64_MAX, 'RESP integer must fit in 64 bits');
      return this.line(0x3a, n.toString());
    }
    assert(Number.isSafeInteger(n), 'RESP integer must be a safe integer');
    this.prefixed(0x3a, n);
    return this;
  }

  /** `$-1\r\n`: the null bulk string. */
  nullBulk(): this {
    return this.raw(NULL_BULK);
  }

  /** `*-1\r\n`: the null array. */
  nullArray(): this {
    return this.raw(NULL_ARRAY);
  }

  /** Bytes that are already RESP. */
  raw(bytes: Buffer): this {
    this.reserve(bytes.length);
    bytes.copy(this.buf, this.len);
    this.len += bytes.length;
    return this;
  }

  private line(prefix: number, text: string): this {
    assert(!/[\r\n]/.test(text), 'RESP line holds CR or LF');
    const bytes = Buffer.byteLength(text);
    this.reserve(bytes + 3);
    this.buf[this.len++] = prefix;
    this.len += this.buf.write(text, this.len, 'utf8');
    this.buf.writeUInt16BE(CRLF, this.len);
    this.len += 2;
    return this;
  }

  /** A copy of what was written; the writer stays as it is. */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }

  /**
   * What was written, without a copy, and an empty writer. The writer never
   * touches the returned bytes again: its next write allocates a new buffer
   * (lazily, so `encodeCommand` allocates once, not twice).
   */
  take(): Buffer {
    const out = this.buf.subarray(0, this.len);
    this.capacity = Math.max(this.capacity, this.buf.length);
    this.buf = EMPTY;
    this.len = 0;
    return out;
  }

  reset(): void {
    this.len = 0;
  }
}

const NULL_BULK = Buffer.from('$-1\r\n');
const NULL_ARRAY = Buffer.from('*-1\r\n');

/** One command as RESP bytes. */
export function encodeCommand(argv: readonly Arg[]): Buffer {
  let size = 16;
  for (const a of argv)
    size += (typeof a === 'string' ? Buffer.byteLength(a) : typeof a === 'number' ? 24 : a.length) + 16;
  return new RespWriter(size).command(argv).take();
}

/**
 * Encode any RESP value: a Buffer as a bulk string, null as the null bulk
 * `$-1`, a number or bigint as an integer, SimpleString as `+`, ErrorReply as
 * `-`, arrays recursively (at most LIMITS.respMaxDepth deep, so that our own
 * decoder reads back whatever we write).
 */
export function writeValue(writer: RespWriter, value: RespValue): void {
  writeNested(writer, value, 0);
}

function writeNested(writer: RespWriter, value: RespValue, depth: number): void {
  if (value === null) {
    writer.nullBulk();
  } else if (Buffer.isBuffer(value)) {
    writer.bulk(value);
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    writer.integer(value);
  } else if (value instanceof SimpleString) {
    writer.simple(value.value);
  } else if (value instanceof ErrorReply) {
    writer.error(value.message);
  } else {
    assert(Array.isArray(value), 'not a RESP value');
    assert(depth < LIMITS.respMaxDepth, 'RESP value nested too deep');
    writer.arrayHeader(value.length);
    for (const item of value) writeNested(writer, item, depth + 1);
  }
}

/** One RESP value as bytes. */
export function encodeValue(value: RespValue): Buffer {
  const writer = new RespWriter(256);
  writeValue(writer, value);
  return writer.take();
}
