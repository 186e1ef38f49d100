/**
 * The queues' compact snapshot encoding, for the AOF rewrite's snapshot base.
 * Loading it skips RESP parsing and command dispatch.
 *
 * Format 2 (written now). A chunk is the byte 0x02, then entries, each a tag:
 *   0x01 record  u32 argc, then per argument u32 length and bytes (UTF-8 text):
 *                a Q.CONFIG or Q.STATE record, applied by the records' apply code
 *   0x03 queue   u16 length and the queue's name: the queue of the jobs that follow
 *   0x02 job     u16 length + id; name; opts; u32 length + data; 11 numbers
 *                (mutableFields' numeric entries, f64 each); u32 length + the
 *                rare fields as JSON text (0: none)
 * A name or opts is a u16 index into the chunk's table of those seen so far,
 * or 0xFFFF and the text (u16 length for names, u32 for opts), which then
 * joins the table (while it holds fewer than 0xFFFE entries). Little-endian.
 * A job is thus a few typed reads and two strings, not seven strings and a
 * JSON parse: a million-job snapshot loads in about half the time of format 1.
 *
 * Format 1 (read only): a chunk is a sequence of records: u32 argc, then per
 * argument u32 length and bytes (big-endian); its jobs are Q.JOB records. Its
 * first byte is 0, the top byte of the first record's argc.
 */
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import type { RecordArg } from '../util/state.js';
import { JOB_NUMBER_FIELDS, type Job } from './job.js';

export const QUEUE_CHUNK_FORMAT_2 = 0x02;
const TAG_RECORD = 0x01;
const TAG_JOB = 0x02;
const TAG_QUEUE = 0x03;
const LITERAL = 0xffff;
const TABLE_MAX = 0xfffe;

function chunkError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_QUEUE_RECORD_INVALID', { command: 'AOFQ.SNAPSHOT queues', reason });
}

/** `[u32 argc] ([u32 length, bytes])…` at `pos` (big-endian in format 1, little-endian in 2); returns the end. */
function writeRecord(
  buf: Buffer,
  pos: number,
  record: readonly (Buffer | string)[],
  littleEndian: boolean,
): number {
  const u32 = (n: number, at: number): number =>
    littleEndian ? buf.writeUInt32LE(n, at) : buf.writeUInt32BE(n, at);
  let p = u32(record.length, pos);
  for (const arg of record) {
    const lengthAt = p;
    p += 4;
    const n = typeof arg === 'string' ? buf.write(arg, p, 'utf8') : arg.copy(buf, p);
    u32(n, lengthAt);
    p += n;
  }
  return p;
}

/** Pack records into chunks of about `maxBytes` (a larger record gets a chunk of its own). */
export function* encodeRecordChunks(
  records: Iterable<readonly (Buffer | string | number)[]>,
  maxBytes: number,
): IterableIterator<Buffer> {
  assert(Number.isSafeInteger(maxBytes) && maxBytes >= 64, 'snapshot chunk size');
  let buf = Buffer.allocUnsafe(maxBytes);
  let pos = 0;
  for (const numeric of records) {
    assert(numeric.length >= 1, 'a record has a name');
    const record = numeric.map((arg) => (typeof arg === 'number' ? String(arg) : arg));
    let size = 4;
    for (const arg of record) size += 4 + (typeof arg === 'string' ? Buffer.byteLength(arg) : arg.length);
    if (pos + size > buf.length) {
      if (pos > 0) yield buf.subarray(0, pos);
      buf = Buffer.allocUnsafe(Math.max(maxBytes, size));
      pos = 0;
    }
    const start = pos;
    pos = writeRecord(buf, pos, record, false);
    assert(pos - start === size, 'snapshot record length');
  }
  if (pos > 0) yield buf.subarray(0, pos);
}

/**
 * Decode a chunk made by encodeRecordChunks and hand each record to `apply`
 * as text: the command name (latin1) and every argument decoded as UTF-8
 * straight from the chunk, with no Buffer per argument (loading a snapshot of
 * a million jobs would otherwise make seven million views).
 */
export function decodeRecordChunkTexts(
  chunk: Buffer,
  apply: (command: string, args: string[]) => void,
): void {
  decodeChunk(chunk, (argc, at) => {
    let pos = at;
    const commandLength = chunk.readUInt32BE(pos);
    const command = chunk.toString('latin1', pos + 4, pos + 4 + Math.min(commandLength, 32)).toUpperCase();
    pos += 4 + commandLength;
    const args: string[] = new Array(argc - 1);
    for (let i = 1; i < argc; i++) {
      const n = chunk.readUInt32BE(pos);
      pos += 4;
      args[i - 1] = chunk.toString('utf8', pos, pos + n);
      pos += n;
    }
    apply(command, args);
  });
}

/**
 * Walk a chunk's records, checking every length against the chunk before
 * `record(argc, at)` reads the arguments that start at `at` (each a u32
 * length and its bytes, all known to lie inside the chunk).
 */
function decodeChunk(chunk: Buffer, record: (argc: number, at: number) => void): void {
  const end = chunk.length;
  let pos = 0;
  for (let records = 0; pos < end; records++) {
    assert(records <= end, 'snapshot chunk loop bound');
    if (end - pos < 4) throw chunkError(`a record header runs past the chunk at byte ${pos}`);
    const argc = chunk.readUInt32BE(pos);
    pos += 4;
    if (argc === 0 || argc > LIMITS.respMaxArrayLength || argc * 4 > end - pos) {
      throw chunkError(`a record of ${argc} arguments at byte ${pos - 4}`);
    }
    const at = pos;
    for (let i = 0; i < argc; i++) {
      if (end - pos < 4) throw chunkError(`an argument runs past the chunk at byte ${pos}`);
      const n = chunk.readUInt32BE(pos);
      pos += 4;
      if (n > end - pos) throw chunkError(`an argument of ${n} bytes runs past the chunk at byte ${pos}`);
      pos += n;
    }
    record(argc, at);
  }
}

// --- format 2 -----------------------------------------------------------------------

/** What the queues hand the encoder, in load order: a queue's Q.CONFIG record, its jobs, its Q.STATE record. */
export type SnapshotItem =
  | { readonly kind: 'record'; readonly record: readonly RecordArg[] }
  | { readonly kind: 'job'; readonly queue: string; readonly job: Job };

/** Interns texts for one chunk: the index of a text seen before, or -1 (and it is added while there is room). */
class ChunkTable {
  private readonly index = new Map<string, number>();
  ref(text: string): number {
    const found = this.index.get(text);
    if (found !== undefined) return found;
    if (this.index.size < TABLE_MAX) this.index.set(text, this.index.size);
    return -1;
  }
}

/** Pack the items into format-2 chunks of about `maxBytes` (a larger item gets a chunk of its own). */
export function* encodeQueueChunks(
  items: Iterable<SnapshotItem>,
  maxBytes: number,
): IterableIterator<Buffer> {
  assert(Number.isSafeInteger(maxBytes) && maxBytes >= 64, 'snapshot chunk size');
  let buf = Buffer.allocUnsafe(maxBytes);
  let pos = 0;
  let names = new ChunkTable();
  let opts = new ChunkTable();
  let chunkQueue: string | null = null;
  const begin = (size: number): void => {
    buf = Buffer.allocUnsafe(Math.max(maxBytes, size + 1));
    buf[0] = QUEUE_CHUNK_FORMAT_2;
    pos = 1;
    names = new ChunkTable();
    opts = new ChunkTable();
    chunkQueue = null;
  };
  begin(0);
  for (const item of items) {
    if (item.kind === 'record') {
      const record = item.record.map((arg) => (typeof arg === 'number' ? String(arg) : arg));
      let size = 5;
      for (const arg of record) size += 4 + (typeof arg === 'string' ? Buffer.byteLength(arg) : arg.length);
      if (pos + size > buf.length && pos > 1) {
        yield buf.subarray(0, pos);
        begin(size);
      }
      if (pos + size > buf.length) begin(size);
      buf[pos++] = TAG_RECORD;
      pos = writeRecord(buf, pos, record, true);
      continue;
    }
    const { queue, job } = item;
    const extraFields = job.extraFields();
    const extra = extraFields === null ? '' : JSON.stringify(extraFields);
    // Upper bounds: a name or opts may be written in full; 3 bytes a UTF-16 unit.
    const size =
      3 +
      queue.length +
      3 +
      3 * job.id.length +
      4 +
      3 * job.name.length +
      6 +
      3 * job.opts.json.length +
      4 +
      3 * job.data.length +
      8 * JOB_NUMBER_FIELDS +
      4 +
      3 * extra.length;
    if (pos + size > buf.length) {
      if (pos > 1) yield buf.subarray(0, pos);
      begin(size);
    }
    if (chunkQueue !== queue) {
      buf[pos++] = TAG_QUEUE;
      const at = pos;
      pos += 2;
      const n = buf.write(queue, pos, 'latin1');
      buf.writeUInt16LE(n, at);
      pos += n;
      chunkQueue = queue;
    }
    buf[pos++] = TAG_JOB;
    pos = writeText16(buf, pos, job.id);
    const nameRef = names.ref(job.name);
    if (nameRef >= 0) pos = buf.writeUInt16LE(nameRef, pos);
    else pos = writeText16(buf, buf.writeUInt16LE(LITERAL, pos), job.name);
    const optsRef = opts.ref(job.opts.json);
    if (optsRef >= 0) pos = buf.writeUInt16LE(optsRef, pos);
    else pos = writeText32(buf, buf.writeUInt16LE(LITERAL, pos), job.opts.json);
    pos = writeText32(buf, pos, job.data);
    pos = buf.writeDoubleLE(job.state, pos);
    pos = buf.writeDoubleLE(job.sortKey, pos);
    pos = buf.writeDoubleLE(job.order, pos);
    pos = buf.writeDoubleLE(job.timestamp, pos);
    pos = buf.writeDoubleLE(job.delay, pos);
    pos = buf.writeDoubleLE(job.attemptsMade, pos);
    pos = buf.writeDoubleLE(job.attemptsStarted, pos);
    pos = buf.writeDoubleLE(job.stalledCounter, pos);
    pos = buf.writeDoubleLE(job.processedOn, pos);
    pos = buf.writeDoubleLE(job.finishedOn, pos);
    pos = buf.writeDoubleLE(job.token, pos);
    pos = writeText32(buf, pos, extra);
  }
  if (pos > 1) yield buf.subarray(0, pos);
}

function writeText16(buf: Buffer, pos: number, text: string): number {
  const n = buf.write(text, pos + 2, 'utf8');
  assert(n <= 0xfffe, 'a 16-bit text fits');
  buf.writeUInt16LE(n, pos);
  return pos + 2 + n;
}

function writeText32(buf: Buffer, pos: number, text: string): number {
  const n = text.length === 0 ? 0 : buf.write(text, pos + 4, 'utf8');
  buf.writeUInt32LE(n, pos);
  return pos + 4 + n;
}

/** Where a format-2 chunk's entries go. `numbers` is reused from job to job: copy what you keep. */
export interface QueueChunkSink {
  record(command: string, args: string[]): void;
  job(
    queue: string,
    id: string,
    name: string,
    opts: string,
    data: string,
    numbers: Float64Array,
    extra: string | null,
  ): void;
}

/** Decode one chunk, format 2 or format 1 (records only), every length checked against the chunk. */
export function decodeQueueChunk(chunk: Buffer, sink: QueueChunkSink): void {
  if (chunk.length === 0) throw chunkError('an empty chunk');
  if (chunk[0] === 0) {
    decodeRecordChunkTexts(chunk, (command, args) => sink.record(command, args));
    return;
  }
  if (chunk[0] !== QUEUE_CHUNK_FORMAT_2) throw chunkError(`unknown chunk format ${chunk[0]}`);
  const end = chunk.length;
  let pos = 1;
  const names: string[] = [];
  const optsTable: string[] = [];
  const numbers = new Float64Array(JOB_NUMBER_FIELDS);
  let queue: string | null = null;
  const need = (bytes: number, what: string): void => {
    if (bytes > end - pos) throw chunkError(`${what} runs past the chunk at byte ${pos}`);
  };
  const text16 = (what: string, encoding: 'utf8' | 'latin1'): string => {
    need(2, what);
    const n = chunk.readUInt16LE(pos);
    pos += 2;
    need(n, what);
    const value = chunk.toString(encoding, pos, pos + n);
    pos += n;
    return value;
  };
  const text32 = (what: string, max: number): string => {
    need(4, what);
    const n = chunk.readUInt32LE(pos);
    pos += 4;
    if (n > max) throw chunkError(`${what} of ${n} bytes is over ${max}`);
    need(n, what);
    const value = n === 0 ? '' : chunk.toString('utf8', pos, pos + n);
    pos += n;
    return value;
  };
  const interned = (table: string[], what: string, literal: () => string): string => {
    need(2, what);
    const ref = chunk.readUInt16LE(pos);
    pos += 2;
    if (ref !== LITERAL) {
      const value = table[ref];
      if (value === undefined) throw chunkError(`${what} #${ref} is not in the chunk's table`);
      return value;
    }
    const value = literal();
    if (table.length < TABLE_MAX) table.push(value);
    return value;
  };
  // Every entry consumes at least one byte, so the loop is bounded by the chunk length.
  for (let entries = 0; pos < end; entries++) {
    assert(entries <= end, 'snapshot chunk loop bound');
    const tag = chunk[pos++] as number;
    if (tag === TAG_JOB) {
      if (queue === null) throw chunkError(`a job before any queue at byte ${pos - 1}`);
      const id = text16('a job id', 'utf8');
      const name = interned(names, 'a job name', () => text16('a job name', 'utf8'));
      const opts = interned(optsTable, 'job options', () => text32('job options', 64 * 1024));
      const data = text32('job data', LIMITS.jobDataBytes);
      need(8 * JOB_NUMBER_FIELDS, 'job fields');
      for (let i = 0; i < JOB_NUMBER_FIELDS; i++) {
        numbers[i] = chunk.readDoubleLE(pos);
        pos += 8;
      }
      const extra = text32('job extra fields', 4 * 64 * 1024 * 12);
      sink.job(queue, id, name, opts, data, numbers, extra === '' ? null : extra);
    } else if (tag === TAG_QUEUE) {
      queue = text16('a queue name', 'latin1');
    } else if (tag === TAG_RECORD) {
      need(4, 'a record');
      const argc = chunk.readUInt32LE(pos);
      pos += 4;
      if (argc === 0 || argc > LIMITS.respMaxArrayLength || argc * 4 > end - pos) {
        throw chunkError(`a record of ${argc} arguments at byte ${pos - 4}`);
      }
      const parts: string[] = new Array(argc);
      for (let i = 0; i < argc; i++) parts[i] = text32('a record argument', LIMITS.respMaxBulkBytes);
      const command = (parts[0] as string).slice(0, 32).toUpperCase();
      sink.record(command, parts.slice(1));
    } else {
      throw chunkError(`unknown entry tag ${tag} at byte ${pos - 1}`);
    }
  }
}
