/**
 * The store's compact snapshot encoding, for the AOF rewrite's snapshot base:
 * keys and values as length-prefixed bytes, applied straight into the
 * keyspace when loaded, without command parsing or dispatch.
 *
 * Format 2 (written now) is laid out as the keyspace's arena (keyspace.ts), so
 * that the loader takes a chunk over as an arena chunk with one copy and writes
 * each entry's slot number into it, instead of copying or decoding entries one
 * by one. A chunk is a sequence of records `u32 word, u32 length, bytes`, all
 * little-endian:
 *   first, the format record: word 2, length 0 (so the first byte is 0x02);
 *   per entry, a key record: word = tag (0 string, 1 hash; +0x80 with expiry),
 *     then for a string one value record (word 0), for a hash one count record
 *     (word = field count, length 0) and a record per field and per value;
 *     with the expiry flag, last an expiry record (word 0, length 8, f64 ms).
 * A string longer than the keyspace's inline size is a value record too; the
 * loader copies it into a Buffer of its own.
 *
 * Format 1 (read only): `u8 tag, u32 key length, key, [f64 expiry], u32 value
 * length, value | u32 field count, (u32 length, field, u32 length, value)...`,
 * big-endian. Its first byte is a tag (0, 1, 0x80 or 0x81), never 2.
 * Keys expired at the snapshot's time are left out in both.
 */
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import {
  type ByteRange,
  type HashValue,
  INLINE_STRING_MAX_BYTES,
  isHash,
  type Keyspace,
  RECORD_HEADER_BYTES,
  type StoredString,
} from './keyspace.js';

export const STORE_CHUNK_FORMAT_2 = 2;
const TAG_STRING = 0;
const TAG_HASH = 1;
const FLAG_EXPIRE = 0x80;
const H = RECORD_HEADER_BYTES;

function chunkError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_STORE_BAD_RECORD', { command: 'AOFQ.SNAPSHOT store', reason });
}

// --- encoding (format 2) ---------------------------------------------------------------

function putRecord(buf: Buffer, pos: number, word: number, source: ByteRange | string | Buffer): number {
  const length = source.length;
  buf.writeUInt32LE(word, pos);
  buf.writeUInt32LE(length, pos + 4);
  pos += H;
  if (typeof source === 'string') buf.write(source, pos, length, 'latin1');
  else if (Buffer.isBuffer(source)) buf.set(source, pos);
  else buf.set(source.buf.subarray(source.start, source.start + length), pos);
  return pos + length;
}

/** The keyspace as format-2 chunks of about `maxBytes` (an entry larger than that gets a chunk of its own). */
export function* encodeStoreChunks(
  keyspace: Keyspace,
  nowMs: number,
  maxBytes: number,
): IterableIterator<Buffer> {
  assert(Number.isSafeInteger(maxBytes) && maxBytes >= 64, 'snapshot chunk size');
  const key: ByteRange = { buf: Buffer.alloc(0), start: 0, length: 0 };
  const value: ByteRange = { buf: Buffer.alloc(0), start: 0, length: 0 };
  let buf = Buffer.allocUnsafe(maxBytes);
  let pos = 0;
  const begin = (): void => {
    buf.writeUInt32LE(STORE_CHUNK_FORMAT_2, 0);
    buf.writeUInt32LE(0, 4);
    pos = H;
  };
  begin();
  for (let slot = 0; slot < keyspace.slotCount; slot++) {
    if (!keyspace.locateKey(slot, key)) continue;
    const expire = keyspace.expireAtSlot(slot);
    if (expire !== undefined && expire <= nowMs) continue;
    const inArena = keyspace.locateValue(slot, value);
    const object = inArena ? undefined : keyspace.objectAt(slot);
    assert(inArena || object !== undefined, 'a live slot has a value');
    let size = H + key.length + (expire !== undefined ? H + 8 : 0);
    if (inArena) size += H + value.length;
    else if (isHash(object as HashValue | Buffer)) {
      size += H;
      for (const [field, fieldValue] of object as HashValue) size += 2 * H + field.length + fieldValue.length;
    } else size += H + (object as Buffer).length;
    if (pos + size > buf.length) {
      if (pos > H) yield buf.subarray(0, pos);
      buf = Buffer.allocUnsafe(Math.max(maxBytes, H + size));
      begin();
    }
    const start = pos;
    const hash = !inArena && isHash(object as HashValue | Buffer);
    pos = putRecord(buf, pos, (hash ? TAG_HASH : TAG_STRING) | (expire !== undefined ? FLAG_EXPIRE : 0), key);
    if (inArena) pos = putRecord(buf, pos, 0, value);
    else if (hash) {
      const fields = object as HashValue;
      buf.writeUInt32LE(fields.size, pos);
      buf.writeUInt32LE(0, pos + 4);
      pos += H;
      for (const [field, fieldValue] of fields) {
        pos = putRecord(buf, pos, 0, field);
        pos = putRecord(buf, pos, 0, fieldValue);
      }
    } else pos = putRecord(buf, pos, 0, object as Buffer);
    if (expire !== undefined) {
      buf.writeUInt32LE(0, pos);
      buf.writeUInt32LE(8, pos + 4);
      pos = buf.writeDoubleLE(expire, pos + H);
    }
    assert(pos - start === size, 'snapshot entry length');
  }
  if (pos > H) yield buf.subarray(0, pos);
}

// --- loading ---------------------------------------------------------------------------

/** Apply one chunk made by encodeStoreChunks (either format). Every length is checked against the chunk. */
export function loadStoreChunk(keyspace: Keyspace, chunk: Buffer): void {
  if (chunk.length >= H && chunk[0] === STORE_CHUNK_FORMAT_2) loadFormat2(keyspace, chunk);
  else loadFormat1(keyspace, chunk);
}

/** Check the framing of a format-2 chunk: every record inside the chunk, the last one ending at its end. */
function checkFramingFormat2(chunk: Buffer): void {
  if (chunk.readUInt32LE(0) !== STORE_CHUNK_FORMAT_2 || chunk.readUInt32LE(4) !== 0) {
    throw chunkError('bad format record');
  }
  const end = chunk.length;
  for (let at = H; at < end; ) {
    if (end - at < H) throw chunkError(`a record header runs past the end of its chunk at byte ${at}`);
    const length = chunk.readUInt32LE(at + 4);
    if (length > end - at - H) throw chunkError(`a record runs past the end of its chunk at byte ${at}`);
    at += H + length;
  }
}

function loadFormat2(keyspace: Keyspace, payload: Buffer): void {
  checkFramingFormat2(payload);
  // The chunk becomes arena memory: our own copy, since the loader's buffer is not ours to keep.
  const chunk = Buffer.allocUnsafeSlow(payload.length);
  chunk.set(payload);
  const end = chunk.length;
  const id = keyspace.adoptChunk(chunk);
  try {
    let at = H;
    // Each entry is at least one record of 8 bytes, so the loop is bounded by the chunk length.
    for (let entries = 0; at < end; entries++) {
      assert(entries <= end, 'snapshot chunk loop bound');
      const tag = chunk.readUInt32LE(at);
      const kind = tag & ~FLAG_EXPIRE;
      if ((kind !== TAG_STRING && kind !== TAG_HASH) || tag > 0xff)
        throw chunkError(`unknown entry tag ${tag}`);
      const keyAt = at;
      const keyLength = chunk.readUInt32LE(at + 4);
      at += H + keyLength;
      if (at >= end) throw chunkError(`an entry without a value at byte ${keyAt}`);
      let slot: number;
      if (kind === TAG_STRING) {
        const valueAt = at;
        const valueLength = chunk.readUInt32LE(at + 4);
        at += H + valueLength;
        if (valueLength > INLINE_STRING_MAX_BYTES) {
          // A long value is a Buffer of its own, as the keyspace keeps it.
          const key = chunk.toString('latin1', keyAt + H, keyAt + H + keyLength);
          keyspace.set(key, Buffer.from(chunk.subarray(valueAt + H, valueAt + H + valueLength)));
          keyspace.removeExpire(key);
          if ((tag & FLAG_EXPIRE) !== 0) at = applyExpiry(keyspace, chunk, at, key);
          continue;
        }
        slot = keyspace.attachString(id, keyAt, valueAt);
      } else {
        const fields = chunk.readUInt32LE(at);
        if (chunk.readUInt32LE(at + 4) !== 0) throw chunkError(`bad field count record at byte ${at}`);
        at += H;
        if (fields === 0 || fields * 2 * H > end - at) throw chunkError(`a hash of ${fields} fields`);
        const hash: HashValue = new Map();
        for (let i = 0; i < fields; i++) {
          if (at >= end) throw chunkError(`a hash runs past the end of its chunk at byte ${at}`);
          const fieldLength = chunk.readUInt32LE(at + 4);
          const field = chunk.toString('latin1', at + H, at + H + fieldLength);
          at += H + fieldLength;
          if (at >= end) throw chunkError(`a hash field without a value at byte ${at}`);
          const valueLength = chunk.readUInt32LE(at + 4);
          const fieldValue: StoredString =
            valueLength <= INLINE_STRING_MAX_BYTES
              ? chunk.toString('latin1', at + H, at + H + valueLength)
              : Buffer.from(chunk.subarray(at + H, at + H + valueLength));
          at += H + valueLength;
          hash.set(field, fieldValue);
        }
        const key = chunk.toString('latin1', keyAt + H, keyAt + H + keyLength);
        keyspace.set(key, hash);
        keyspace.removeExpire(key);
        if ((tag & FLAG_EXPIRE) !== 0) at = applyExpiry(keyspace, chunk, at, key);
        continue;
      }
      if ((tag & FLAG_EXPIRE) !== 0) {
        const expire = readExpiry(chunk, at);
        keyspace.setExpireAtSlot(slot, expire);
        at += H + 8;
      }
    }
  } finally {
    keyspace.endAdoption();
  }
}

function readExpiry(chunk: Buffer, at: number): number {
  if (at >= chunk.length || chunk.readUInt32LE(at + 4) !== 8)
    throw chunkError(`missing expiry record at byte ${at}`);
  const expire = chunk.readDoubleLE(at + H);
  if (!Number.isSafeInteger(expire)) throw chunkError(`bad expiry time ${expire}`);
  return expire;
}

function applyExpiry(keyspace: Keyspace, chunk: Buffer, at: number, key: string): number {
  keyspace.setExpire(key, readExpiry(chunk, at));
  return at + H + 8;
}

function loadFormat1(keyspace: Keyspace, chunk: Buffer): void {
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

/** Format 1, as written before format 2: for the tests that prove old bases still load. */
export function* encodeStoreChunksFormat1(
  keyspace: Keyspace,
  nowMs: number,
  maxBytes: number,
): IterableIterator<Buffer> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for (const key of keyspace.keys()) {
    const value = keyspace.get(key);
    if (value === undefined) continue;
    const expire = keyspace.getExpire(key);
    if (expire !== undefined && expire <= nowMs) continue;
    const entry: Buffer[] = [];
    const u32 = (n: number): Buffer => {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(n, 0);
      return b;
    };
    const stored = (v: StoredString): void => {
      const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
      entry.push(u32(b.length), b);
    };
    const hash = isHash(value);
    entry.push(Buffer.from([(hash ? TAG_HASH : TAG_STRING) | (expire !== undefined ? FLAG_EXPIRE : 0)]));
    stored(key);
    if (expire !== undefined) {
      const e = Buffer.allocUnsafe(8);
      e.writeDoubleBE(expire, 0);
      entry.push(e);
    }
    if (hash) {
      entry.push(u32(value.size));
      for (const [field, fieldValue] of value) {
        stored(field);
        stored(fieldValue);
      }
    } else stored(value);
    const encoded = Buffer.concat(entry);
    if (bytes + encoded.length > maxBytes && bytes > 0) {
      yield Buffer.concat(parts);
      parts.length = 0;
      bytes = 0;
    }
    parts.push(encoded);
    bytes += encoded.length;
  }
  if (bytes > 0) yield Buffer.concat(parts);
}
