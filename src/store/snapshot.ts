/**
 * The store's compact snapshot encoding, for the AOF rewrite's snapshot base:
 * keys and values as length-prefixed bytes, applied straight into the
 * keyspace when loaded, without command parsing or dispatch.
 *
 * A chunk is a sequence of entries:
 *   u8  tag        0 = string, 1 = hash; +0x80 when an expiry follows the key
 *   u32 keyLength, key bytes
 *   f64 expireAtMs (only with the 0x80 flag; a safe integer, exact as a double)
 *   string: u32 valueLength, value bytes
 *   hash:   u32 fieldCount, then per field: u32 length, field, u32 length, value
 * All integers big-endian. Keys expired at the snapshot's time are left out.
 */
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import {
  type HashValue,
  INLINE_STRING_MAX_BYTES,
  isHash,
  type Keyspace,
  type StoredString,
} from './keyspace.js';

const TAG_STRING = 0;
const TAG_HASH = 1;
const FLAG_EXPIRE = 0x80;

function chunkError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_STORE_BAD_RECORD', { command: 'AOFQ.SNAPSHOT store', reason });
}

function storedLength(value: StoredString): number {
  // Inline strings are latin1: one code unit per byte.
  return value.length;
}

function entryBytes(key: string, value: StoredString | HashValue, hasExpire: boolean): number {
  let size = 1 + 4 + key.length + (hasExpire ? 8 : 0);
  if (isHash(value)) {
    size += 4;
    for (const [field, fieldValue] of value) size += 8 + field.length + storedLength(fieldValue);
  } else {
    size += 4 + storedLength(value);
  }
  return size;
}

function writeStored(buf: Buffer, pos: number, value: StoredString): number {
  buf.writeUInt32BE(value.length, pos);
  pos += 4;
  if (typeof value === 'string') return pos + buf.write(value, pos, 'latin1');
  return pos + value.copy(buf, pos);
}

/** The keyspace as chunks of about `maxBytes` (an entry larger than that gets a chunk of its own). */
export function* encodeStoreChunks(
  keyspace: Keyspace,
  nowMs: number,
  maxBytes: number,
): IterableIterator<Buffer> {
  assert(Number.isSafeInteger(maxBytes) && maxBytes >= 64, 'snapshot chunk size');
  let buf = Buffer.allocUnsafe(maxBytes);
  let pos = 0;
  for (const key of keyspace.keys()) {
    const value = keyspace.get(key);
    if (value === undefined) continue;
    const expire = keyspace.getExpire(key);
    if (expire !== undefined && expire <= nowMs) continue;
    const size = entryBytes(key, value, expire !== undefined);
    if (pos + size > buf.length) {
      if (pos > 0) yield buf.subarray(0, pos);
      buf = Buffer.allocUnsafe(Math.max(maxBytes, size));
      pos = 0;
    }
    const start = pos;
    const hash = isHash(value);
    buf[pos++] = (hash ? TAG_HASH : TAG_STRING) | (expire !== undefined ? FLAG_EXPIRE : 0);
    buf.writeUInt32BE(key.length, pos);
    pos += 4;
    pos += buf.write(key, pos, 'latin1');
    if (expire !== undefined) pos = buf.writeDoubleBE(expire, pos);
    if (hash) {
      buf.writeUInt32BE(value.size, pos);
      pos += 4;
      for (const [field, fieldValue] of value) {
        pos = writeStored(buf, pos, field);
        pos = writeStored(buf, pos, fieldValue);
      }
    } else {
      pos = writeStored(buf, pos, value);
    }
    assert(pos - start === size, 'snapshot entry length');
  }
  if (pos > 0) yield buf.subarray(0, pos);
}

/** Apply one chunk made by encodeStoreChunks. Every length is checked against the chunk. */
export function loadStoreChunk(keyspace: Keyspace, chunk: Buffer): void {
  const end = chunk.length;
  let pos = 0;
  const need = (bytes: number): void => {
    if (bytes > end - pos) throw chunkError(`an entry runs past the end of its chunk at byte ${pos}`);
  };
  const readLength = (): number => {
    need(4);
    const n = chunk.readUInt32BE(pos);
    pos += 4;
    need(n);
    return n;
  };
  const readStored = (): StoredString => {
    const n = readLength();
    const value: StoredString =
      n <= INLINE_STRING_MAX_BYTES
        ? chunk.toString('latin1', pos, pos + n)
        : Buffer.from(chunk.subarray(pos, pos + n));
    pos += n;
    return value;
  };
  // Each entry consumes at least 9 bytes, so the loop is bounded by the chunk length.
  for (let entries = 0; pos < end; entries++) {
    assert(entries <= end, 'snapshot chunk loop bound');
    const tag = chunk[pos++] as number;
    const kind = tag & ~FLAG_EXPIRE;
    if (kind !== TAG_STRING && kind !== TAG_HASH) throw chunkError(`unknown entry tag ${tag}`);
    const keyLength = readLength();
    if (keyLength > LIMITS.respMaxBulkBytes) throw chunkError('key too long');
    const key = chunk.toString('latin1', pos, pos + keyLength);
    pos += keyLength;
    let expire: number | undefined;
    if ((tag & FLAG_EXPIRE) !== 0) {
      need(8);
      expire = chunk.readDoubleBE(pos);
      pos += 8;
      if (!Number.isSafeInteger(expire)) throw chunkError(`bad expiry time ${expire}`);
    }
    if (kind === TAG_STRING) {
      keyspace.set(key, readStored());
    } else {
      need(4);
      const fields = chunk.readUInt32BE(pos);
      pos += 4;
      if (fields === 0 || fields * 8 > end - pos) throw chunkError(`a hash of ${fields} fields`);
      const hash: HashValue = new Map();
      for (let i = 0; i < fields; i++) {
        const field = readStored();
        hash.set(typeof field === 'string' ? field : field.toString('latin1'), readStored());
      }
      keyspace.set(key, hash);
    }
    if (expire !== undefined) keyspace.setExpire(key, expire);
    else keyspace.removeExpire(key);
  }
}
