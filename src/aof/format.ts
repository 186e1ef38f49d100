/**
 * The byte-level format of aofq's AOF files (docs/AOF_FORMAT.md is the prose
 * version). Every file aofq writes is valid Redis AOF: RESP arrays of bulk
 * strings, plus annotation lines that start with '#', which Redis's loader and
 * redis-check-aof skip.
 *
 *   file header   #aofq v=1 kind=<base|incr> lsn=<L>\r\n
 *                 L: every record with an LSN <= L precedes this file. The
 *                 first record of an incr file has LSN L+1; a base file holds
 *                 the state as of LSN L.
 *   timestamp     #TS:<unix-seconds>\r\n            (Redis's own, optional)
 *   batch         #aofq b lsn=<first> n=<count> len=<bytes> crc=<crc32c hex8> ms=<unix-ms>\r\n
 *                 followed by exactly <bytes> bytes holding <count> RESP
 *                 records; crc is CRC32C over those bytes. In a base file the
 *                 records carry no LSN, and the annotation says lsn=<L> of the header.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { assert, assertUint } from '../util/assert.js';

export const FORMAT_VERSION = 1;

export type FileKind = 'base' | 'incr';

export function baseFileName(appendfilename: string, seq: number, ext: 'aof' | 'rdb' = 'aof'): string {
  assertUint(seq, 'seq');
  return `${appendfilename}.${seq}.base.${ext}`;
}

export function incrFileName(appendfilename: string, seq: number): string {
  assertUint(seq, 'seq');
  return `${appendfilename}.${seq}.incr.aof`;
}

export function manifestFileName(appendfilename: string): string {
  return `${appendfilename}.manifest`;
}

/** CRC32C (Castagnoli), hardware-accelerated through @node-rs/crc32. */
export function crc32c(buf: Buffer, initial = 0): number {
  return nativeCrc32c(buf, initial) >>> 0;
}

export interface FileHeader {
  kind: FileKind;
  lsn: number;
}

export function encodeFileHeader(h: FileHeader): Buffer {
  assertUint(h.lsn, 'header lsn');
  return Buffer.from(`#aofq v=${FORMAT_VERSION} kind=${h.kind} lsn=${h.lsn}\r\n`, 'latin1');
}

export interface BatchAnnotation {
  /** LSN of the first record (in a base: the base's LSN). */
  lsn: number;
  /** Number of records in the batch, >= 1. */
  count: number;
  /** Byte length of the records that follow the annotation line. */
  bytes: number;
  /** CRC32C of those bytes. */
  crc: number;
  /** Unix milliseconds when the batch was written. */
  ms: number;
}

/** `#aofq b lsn=`, ` n=`, ` len=`, ` crc=` with its 8 hex digits, ` ms=` and the CRLF: the annotation's bytes besides its four numbers. */
const BATCH_FIXED_BYTES = 12 + 3 + 5 + 5 + 8 + 4 + 2;

/** Digits of a safe integer's decimal text (1 for 0). */
function decimalDigits(n: number): number {
  let digits = 1;
  for (let bound = 10; n >= bound && digits < 16; bound *= 10) digits++;
  return digits;
}

/** Byte length of the batch annotation line for `a` (see writeBatchAnnotation). */
export function batchAnnotationBytes(a: BatchAnnotation): number {
  return (
    BATCH_FIXED_BYTES +
    decimalDigits(a.lsn) +
    decimalDigits(a.count) +
    decimalDigits(a.bytes) +
    decimalDigits(a.ms)
  );
}

function writeAscii(buf: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) buf[at + i] = text.charCodeAt(i);
  return at + text.length;
}

/** Writes `n` in decimal at `at`; returns the position after it. */
function writeDecimal(buf: Buffer, at: number, n: number): number {
  const end = at + decimalDigits(n);
  let rest = n;
  for (let i = end - 1; i >= at; i--) {
    const q = Math.floor(rest / 10);
    buf[i] = 0x30 + (rest - q * 10);
    rest = q;
  }
  return end;
}

const HEX_DIGITS = '0123456789abcdef';

/**
 * Writes the batch annotation line for `a` into `buf` at `at`, batchAnnotationBytes(a) bytes;
 * returns the position after it. Straight into the writer's arena: no text and no Buffer made
 * per batch, and no number texts that V8 would keep in its old-generation number cache.
 */
export function writeBatchAnnotation(buf: Buffer, at: number, a: BatchAnnotation): number {
  assertUint(a.lsn, 'batch lsn');
  assert(Number.isSafeInteger(a.count) && a.count >= 1, 'batch count');
  assertUint(a.bytes, 'batch bytes');
  assertUint(a.ms, 'batch ms');
  assert(at >= 0, 'batch annotation offset');
  let p = writeAscii(buf, at, '#aofq b lsn=');
  p = writeDecimal(buf, p, a.lsn);
  p = writeAscii(buf, p, ' n=');
  p = writeDecimal(buf, p, a.count);
  p = writeAscii(buf, p, ' len=');
  p = writeDecimal(buf, p, a.bytes);
  p = writeAscii(buf, p, ' crc=');
  const crc = a.crc >>> 0;
  for (let shift = 28; shift >= 0; shift -= 4) buf[p++] = HEX_DIGITS.charCodeAt((crc >>> shift) & 15);
  p = writeAscii(buf, p, ' ms=');
  p = writeDecimal(buf, p, a.ms);
  buf[p++] = 0x0d;
  buf[p++] = 0x0a;
  // Stores past a Buffer's end are dropped, not made: checked once, after the line.
  assert(p <= buf.length, 'batch annotation fits');
  return p;
}

export function encodeBatchAnnotation(a: BatchAnnotation): Buffer {
  const buf = Buffer.allocUnsafe(batchAnnotationBytes(a));
  const end = writeBatchAnnotation(buf, 0, a);
  assert(end === buf.length, 'batch annotation length');
  return buf;
}

export function encodeTimestamp(unixSeconds: number): Buffer {
  assertUint(unixSeconds, 'timestamp');
  return Buffer.from(`#TS:${unixSeconds}\r\n`, 'latin1');
}

export type Annotation =
  | { type: 'header'; header: FileHeader; version: number }
  | { type: 'batch'; batch: BatchAnnotation }
  | { type: 'timestamp'; unixSeconds: number }
  | { type: 'other'; text: string };

const HEADER_RE = /^aofq v=(\d{1,6}) kind=(base|incr) lsn=(\d{1,16})$/;
const BATCH_RE = /^aofq b lsn=(\d{1,16}) n=(\d{1,10}) len=(\d{1,16}) crc=([0-9a-f]{8}) ms=(\d{1,16})$/;
const TS_RE = /^TS:(\d{1,16})$/;

/**
 * Parse an annotation line's text: what follows '#', without the line ending.
 * Lines that look like ours but do not parse are `other`; the loader decides
 * whether that is an error (it is, inside a file that has an aofq header).
 */
export function parseAnnotation(text: string): Annotation {
  let m = BATCH_RE.exec(text);
  if (m) {
    const batch: BatchAnnotation = {
      lsn: Number(m[1]),
      count: Number(m[2]),
      bytes: Number(m[3]),
      crc: Number.parseInt(m[4] as string, 16),
      ms: Number(m[5]),
    };
    if (isSafe(batch.lsn) && isSafe(batch.bytes) && isSafe(batch.ms) && batch.count >= 1) {
      return { type: 'batch', batch };
    }
    return { type: 'other', text };
  }
  m = HEADER_RE.exec(text);
  if (m) {
    const lsn = Number(m[3]);
    if (isSafe(lsn))
      return { type: 'header', version: Number(m[1]), header: { kind: m[2] as FileKind, lsn } };
    return { type: 'other', text };
  }
  m = TS_RE.exec(text);
  if (m) return { type: 'timestamp', unixSeconds: Number(m[1]) };
  return { type: 'other', text };
}

function isSafe(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}
