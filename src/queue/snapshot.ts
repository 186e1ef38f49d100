/**
 * The queues' compact snapshot encoding, for the AOF rewrite's snapshot base:
 * the snapshot records (Q.CONFIG, Q.JOB, Q.STATE) as length-prefixed byte
 * strings, so that loading skips RESP parsing and command dispatch and goes
 * straight to the records' apply code.
 *
 * A chunk is a sequence of records: u32 argc, then per argument u32 length and
 * the bytes (big-endian). A string argument is written as UTF-8.
 */
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';

function chunkError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_QUEUE_RECORD_INVALID', { command: 'AOFQ.SNAPSHOT queues', reason });
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
    pos = buf.writeUInt32BE(record.length, pos);
    for (const arg of record) {
      const lengthAt = pos;
      pos += 4;
      const n = typeof arg === 'string' ? buf.write(arg, pos, 'utf8') : arg.copy(buf, pos);
      buf.writeUInt32BE(n, lengthAt);
      pos += n;
    }
    assert(pos - start === size, 'snapshot record length');
  }
  if (pos > 0) yield buf.subarray(0, pos);
}

/** Decode a chunk made by encodeRecordChunks and hand each record to `apply`. */
export function decodeRecordChunk(chunk: Buffer, apply: (record: Buffer[]) => void): void {
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
    const record: Buffer[] = new Array(argc);
    for (let i = 0; i < argc; i++) {
      if (end - pos < 4) throw chunkError(`an argument runs past the chunk at byte ${pos}`);
      const n = chunk.readUInt32BE(pos);
      pos += 4;
      if (n > end - pos) throw chunkError(`an argument of ${n} bytes runs past the chunk at byte ${pos}`);
      record[i] = chunk.subarray(pos, pos + n);
      pos += n;
    }
    apply(record);
  }
}
