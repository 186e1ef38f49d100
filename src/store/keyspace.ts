/**
 * The keyspace's storage: keys, values and expiry times, with no command
 * semantics. Owned here: the hash index, the byte arena that holds keys and
 * string values, the slot layout that gives SCAN a stable cursor, and the
 * ordered expiry index for active expiry.
 *
 * Encoding. Keys and hash fields are latin1 strings at this interface: one
 * UTF-16 code unit per byte, so any byte sequence round-trips and string order
 * is byte order. A string value up to INLINE_STRING_MAX_BYTES is returned as a
 * latin1 string too; a longer one is a Buffer of its own (never a view into a
 * caller's buffer). A hash is a Map of latin1 strings.
 *
 * Why an arena. A million keys held as JS strings in a Map are two million
 * heap objects that every full GC marks and every load allocates, copies and
 * promotes one by one (that was 60 % of a snapshot load, and the long GC pauses
 * of a big keyspace under writes). Here keys and short string values are bytes
 * in large Buffers (the arena), found through an open-addressing hash table of
 * typed arrays: per key, the GC sees nothing. Only hashes and values longer
 * than INLINE_STRING_MAX_BYTES stay objects.
 *
 * Arena. Each key, and each arena-held value, is one record appended to the
 * current arena chunk: `u32 slot, u32 length, bytes`. A slot points at its key
 * record and its value record by (chunk, offset). Replacing or deleting a value
 * leaves its bytes dead; a chunk whose live bytes fall below half of it is
 * compacted (its live records, found through their slot back-references, move
 * to the current chunk) and then dropped. Live bytes are thus at least half of
 * every chunk but the current one, and the copying is amortized O(1) per byte
 * written.
 *
 * Slots. Every key lives in a slot, an index into parallel typed arrays, and
 * keeps it for its whole life. Freed slots are reused. SCAN's cursor is the
 * next slot to visit, so a key that exists for the whole scan is returned
 * exactly once, whatever is inserted or deleted between calls.
 *
 * Hash index. Linear probing over a power-of-two Int32Array of slot numbers
 * (EMPTY, TOMBSTONE), at most half full counting tombstones; each slot keeps
 * its key's 32-bit hash, so growing never rehashes a key. The hash is FNV-1a
 * over the key's bytes with a per-process random seed.
 */

import { randomBytes } from 'node:crypto';
import { assert } from '../util/assert.js';
import { BTree } from './btree.js';

/** Longest string value returned as a latin1 string rather than a Buffer (and held in the arena). */
export const INLINE_STRING_MAX_BYTES = 4096;

/** A string value or a hash field's value. */
export type StoredString = string | Buffer;
export type HashValue = Map<string, StoredString>;
export type Value = StoredString | HashValue;

export function storedStringOf(bytes: Buffer): StoredString {
  if (bytes.length <= INLINE_STRING_MAX_BYTES) return bytes.toString('latin1');
  return Buffer.from(bytes);
}

export function storedStringBytes(value: StoredString): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
}

/** The value as latin1 text (for integer parsing). Only call on short values. */
export function storedStringText(value: StoredString): string {
  return typeof value === 'string' ? value : value.toString('latin1');
}

/** A range of bytes in a buffer (reused by the raw accessors to avoid allocations). */
export interface ByteRange {
  buf: Buffer;
  start: number;
  length: number;
}

export function isHash(value: Value): value is HashValue {
  return value instanceof Map;
}

/** Expiry times are safe integers; the index orders them by a fixed-width hex prefix (2^53 needs 14 digits). */
const EXPIRY_PREFIX_DIGITS = 14;

function expiryIndexKey(expireAtMs: number, key: string): string {
  assert(Number.isSafeInteger(expireAtMs), 'expiry must be a safe integer');
  // Negative times (possible only through replay of an old record) sort first, all as one.
  return Math.max(expireAtMs, 0).toString(16).padStart(EXPIRY_PREFIX_DIGITS, '0') + key;
}

/** Size of a fresh arena chunk; a record larger than that gets a chunk of its own. */
const ARENA_CHUNK_BYTES = 1 << 20;
/** `u32 slot, u32 length` in front of every arena record. */
export const RECORD_HEADER_BYTES = 8;
/** A chunk is compacted when its live bytes fall below this fraction of its size. */
const COMPACT_BELOW = 0.5;

const EMPTY = -1;
const TOMBSTONE = -2;
/** valueChunk of a slot whose value is an object (a hash, or a Buffer beyond the inline size). */
const VALUE_OBJECT = -1;
/** keyChunk of a free slot. */
const FREE = -1;

const FNV_PRIME = 0x01000193;
const HASH_SEED = randomBytes(4).readUInt32LE(0) ^ 0x811c9dc5;

function hashString(key: string): number {
  let h = HASH_SEED;
  let high = 0;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    high |= c;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  assert(high <= 0xff, 'keys are latin1 strings');
  return h >>> 0;
}

function hashBytes(buf: Buffer, start: number, end: number): number {
  let h = HASH_SEED;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (buf[i] as number), FNV_PRIME);
  return h >>> 0;
}

function grownInt32(old: Int32Array<ArrayBuffer>, length: number, fill: number): Int32Array<ArrayBuffer> {
  const next = new Int32Array(length).fill(fill);
  next.set(old);
  return next;
}

function grownUint32(old: Uint32Array<ArrayBuffer>, length: number): Uint32Array<ArrayBuffer> {
  const next = new Uint32Array(length);
  next.set(old);
  return next;
}

/**
 * Copy `length` bytes. Buffer#copy validates its arguments in JS before its
 * memcpy, which costs more than the copy itself at a key's or a short value's
 * size; TypedArray#set on a view does not (2x faster at 100 bytes here).
 */
function copyBytes(source: Buffer, start: number, length: number, target: Buffer, at: number): void {
  target.set(source.subarray(start, start + length), at);
}

const INITIAL_SLOTS = 16;
const INITIAL_TABLE = 32;

export interface KeyspaceOptions {
  /** Size of a fresh arena chunk (tests make it small to exercise compaction). */
  arenaChunkBytes?: number;
}

export class Keyspace {
  private readonly arenaChunkBytes: number;

  constructor(opts: KeyspaceOptions = {}) {
    this.arenaChunkBytes = opts.arenaChunkBytes ?? ARENA_CHUNK_BYTES;
    assert(Number.isSafeInteger(this.arenaChunkBytes) && this.arenaChunkBytes >= 64, 'arena chunk size');
  }

  // The hash index: slot numbers, EMPTY or TOMBSTONE.
  private table = new Int32Array(INITIAL_TABLE).fill(EMPTY);
  private tableFilled = 0; // live entries + tombstones

  // Per slot, parallel arrays over [0, slotCountValue).
  private slotHash = new Uint32Array(INITIAL_SLOTS);
  private keyChunk = new Int32Array(INITIAL_SLOTS).fill(FREE);
  private keyOffset = new Uint32Array(INITIAL_SLOTS);
  private valueChunk = new Int32Array(INITIAL_SLOTS).fill(VALUE_OBJECT);
  private valueOffset = new Uint32Array(INITIAL_SLOTS);
  private expireAt = new Float64Array(INITIAL_SLOTS).fill(Number.NaN);
  /** Values that are objects (hashes, long Buffers), by slot. */
  private readonly objects = new Map<number, HashValue | Buffer>();
  private slotCountValue = 0;
  private live = 0;
  private freeSlots: number[] = [];
  private expires = 0;
  /** `hex(expiry) + key` for every key with a TTL: ordered by time, then by key. */
  private expiryIndex = new BTree<string, undefined>();

  // The arena.
  private chunks: (Buffer | undefined)[] = [];
  private chunkLive: number[] = [];
  private chunkEnd: number[] = [];
  private freeChunkIds: number[] = [];
  private current = -1;
  /** The chunk being adopted (adoptChunk), exempt from compaction until endAdoption; or -1. */
  private adopting = -1;
  /** Chunks to check for compaction at the end of the operation (settle). */
  private unsettled: number[] = [];

  // The last key looked up and its slot: a command looks its key up several times.
  private memoKey: string | undefined = undefined;
  private memoSlot = -1;

  get size(): number {
    return this.live;
  }

  get expiresCount(): number {
    return this.expires;
  }

  /** Slots allocated so far (live and free): SCAN cursors run over [0, slotCount). */
  get slotCount(): number {
    return this.slotCountValue;
  }

  /** Arena bytes held (live and dead) and live, for tests and INFO-style figures. */
  arenaStats(): { chunks: number; bytes: number; liveBytes: number } {
    let chunks = 0;
    let bytes = 0;
    let liveBytes = 0;
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.chunks[c];
      if (chunk === undefined) continue;
      chunks++;
      bytes += chunk.length;
      liveBytes += this.chunkLive[c] as number;
    }
    return { chunks, bytes, liveBytes };
  }

  get(key: string): Value | undefined {
    const slot = this.find(key);
    return slot < 0 ? undefined : this.valueAt(slot);
  }

  /**
   * The value with a string as bytes: GET's path, which makes no string. An
   * arena value comes back as a view of the arena: arena bytes are never
   * written again once a record is complete (compaction copies, then drops the
   * chunk), so the view stays valid as long as it is held. Read only.
   */
  getBytes(key: string): Buffer | HashValue | undefined {
    const slot = this.find(key);
    if (slot < 0) return undefined;
    const chunk = this.valueChunk[slot] as number;
    if (chunk === VALUE_OBJECT) return this.objects.get(slot);
    const buf = this.chunks[chunk] as Buffer;
    const from = (this.valueOffset[slot] as number) + RECORD_HEADER_BYTES;
    return buf.subarray(from, from + buf.readUInt32LE(from - 4));
  }

  has(key: string): boolean {
    return this.find(key) >= 0;
  }

  /** Sets the value; the TTL is left as it is (callers clear it when the command says so). */
  set(key: string, value: Value): void {
    this.storeValue(this.slotForValue(key), value);
    this.settle();
  }

  /**
   * Sets a string value from bytes that the caller may reuse afterwards (they
   * are copied). The path of SET, APPEND and replay: no string is made.
   */
  setBytes(key: string, value: Buffer): void {
    if (value.length > INLINE_STRING_MAX_BYTES) {
      this.set(key, Buffer.from(value));
      return;
    }
    this.writeValueBytes(this.slotForValue(key), value, 0, value.length);
    this.settle();
  }

  /** The key's slot (a new one for a new key), with no value: the caller stores one. */
  private slotForValue(key: string): number {
    let slot = this.find(key);
    if (slot < 0) {
      slot = this.newSlot(this.lastHash);
      this.writeKeyString(slot, key);
      this.memoKey = key;
      this.memoSlot = slot;
    } else {
      this.releaseValue(slot);
    }
    return slot;
  }

  // --- raw access, for the snapshot encoder and loader (snapshot.ts) ------------------------

  /** Point `out` at the key bytes of `slot`; false for a free slot. `out.buf` is the arena's: read only. */
  locateKey(slot: number, out: ByteRange): boolean {
    if (slot < 0 || slot >= this.slotCountValue || this.keyChunk[slot] === FREE) return false;
    const buf = this.chunks[this.keyChunk[slot] as number] as Buffer;
    const at = this.keyOffset[slot] as number;
    out.buf = buf;
    out.start = at + RECORD_HEADER_BYTES;
    out.length = buf.readUInt32LE(at + 4);
    return true;
  }

  /** Point `out` at the arena value of a live `slot`; false when its value is an object (objectAt). */
  locateValue(slot: number, out: ByteRange): boolean {
    const chunk = this.valueChunk[slot] as number;
    if (chunk === VALUE_OBJECT) return false;
    const buf = this.chunks[chunk] as Buffer;
    const at = this.valueOffset[slot] as number;
    out.buf = buf;
    out.start = at + RECORD_HEADER_BYTES;
    out.length = buf.readUInt32LE(at + 4);
    return true;
  }

  /** The object value (a hash, or a Buffer beyond the inline size) of a live slot. */
  objectAt(slot: number): HashValue | Buffer | undefined {
    return this.objects.get(slot);
  }

  /** The expiry of a live slot. */
  expireAtSlot(slot: number): number | undefined {
    const at = this.expireAt[slot] as number;
    return Number.isNaN(at) ? undefined : at;
  }

  setExpireAtSlot(slot: number, expireAtMs: number): void {
    assert(slot >= 0 && slot < this.slotCountValue && this.keyChunk[slot] !== FREE, 'expire on a free slot');
    const key = this.keyString(slot);
    if (!Number.isNaN(this.expireAt[slot] as number)) this.removeExpireAt(slot, key);
    this.expireAt[slot] = expireAtMs;
    this.expires++;
    this.expiryIndex.set(expiryIndexKey(expireAtMs, key), undefined);
  }

  /**
   * Take `buf` over as an arena chunk, as it is: the snapshot loader's path,
   * which then attaches the records it holds (attachString) and ends with
   * endAdoption. Every byte of `buf` must be framed as arena records
   * (`u32, u32 length, bytes`), checked by the caller; records that no slot
   * points at are dead bytes, reclaimed by compaction. Returns the chunk id.
   */
  adoptChunk(buf: Buffer): number {
    assert(this.adopting === -1, 'one chunk adopted at a time');
    const id = this.freeChunkIds.pop() ?? this.chunks.length;
    this.chunks[id] = buf;
    this.chunkLive[id] = 0;
    this.chunkEnd[id] = buf.length;
    this.adopting = id;
    return id;
  }

  /**
   * Index the key record at `keyAt` of the adopted chunk with the value record
   * at `valueAt` (offsets of their headers), replacing any value the key had and
   * clearing its TTL; writes the slot into both headers. Returns the slot.
   */
  attachString(chunk: number, keyAt: number, valueAt: number): number {
    assert(chunk === this.adopting, 'attach into the adopted chunk');
    const buf = this.chunks[chunk] as Buffer;
    const keyLength = buf.readUInt32LE(keyAt + 4);
    const valueLength = buf.readUInt32LE(valueAt + 4);
    assert(valueLength <= INLINE_STRING_MAX_BYTES, 'an arena value is inline-sized');
    const keyStart = keyAt + RECORD_HEADER_BYTES;
    const h = hashBytes(buf, keyStart, keyStart + keyLength);
    let slot = this.findBytes(h, buf, keyStart, keyLength);
    if (slot < 0) {
      slot = this.newSlot(h);
      buf.writeUInt32LE(slot, keyAt);
      this.keyChunk[slot] = chunk;
      this.keyOffset[slot] = keyAt;
      this.chunkLive[chunk] = (this.chunkLive[chunk] as number) + RECORD_HEADER_BYTES + keyLength;
    } else {
      this.releaseValue(slot);
      if (!Number.isNaN(this.expireAt[slot] as number)) this.removeExpireAt(slot, this.keyString(slot));
    }
    buf.writeUInt32LE(slot, valueAt);
    this.valueChunk[slot] = chunk;
    this.valueOffset[slot] = valueAt;
    this.chunkLive[chunk] = (this.chunkLive[chunk] as number) + RECORD_HEADER_BYTES + valueLength;
    this.settle();
    return slot;
  }

  /** The adopted chunk is complete: from now on it is compacted like any other. */
  endAdoption(): void {
    const chunk = this.adopting;
    assert(chunk >= 0, 'an adoption to end');
    this.adopting = -1;
    this.unsettled.push(chunk);
    this.settle();
  }

  delete(key: string): boolean {
    const slot = this.find(key);
    if (slot < 0) return false;
    if (!Number.isNaN(this.expireAt[slot] as number)) this.removeExpireAt(slot, key);
    this.unindex(slot);
    this.releaseValue(slot);
    // Read the key's place after the value's release (a compaction may have moved it), and
    // free the slot before releasing it, so that a compaction it starts sees the record dead.
    const keyChunk = this.keyChunk[slot] as number;
    this.keyChunk[slot] = FREE;
    this.release(keyChunk, this.keyOffset[slot] as number);
    this.live--;
    this.memoKey = undefined;
    if (slot === this.slotCountValue - 1) {
      // Trim a free slot at the end; a cursor past the end simply finishes the scan.
      this.slotCountValue--;
    } else {
      this.freeSlots.push(slot);
    }
    this.settle();
    return true;
  }

  clear(): void {
    this.table = new Int32Array(INITIAL_TABLE).fill(EMPTY);
    this.tableFilled = 0;
    this.slotHash = new Uint32Array(INITIAL_SLOTS);
    this.keyChunk = new Int32Array(INITIAL_SLOTS).fill(FREE);
    this.keyOffset = new Uint32Array(INITIAL_SLOTS);
    this.valueChunk = new Int32Array(INITIAL_SLOTS).fill(VALUE_OBJECT);
    this.valueOffset = new Uint32Array(INITIAL_SLOTS);
    this.expireAt = new Float64Array(INITIAL_SLOTS).fill(Number.NaN);
    this.objects.clear();
    this.slotCountValue = 0;
    this.live = 0;
    this.freeSlots = [];
    this.expires = 0;
    this.expiryIndex = new BTree<string, undefined>();
    this.chunks = [];
    this.chunkLive = [];
    this.chunkEnd = [];
    this.freeChunkIds = [];
    this.current = -1;
    this.adopting = -1;
    this.unsettled = [];
    this.memoKey = undefined;
  }

  getExpire(key: string): number | undefined {
    const slot = this.find(key);
    if (slot < 0) return undefined;
    const at = this.expireAt[slot] as number;
    return Number.isNaN(at) ? undefined : at;
  }

  setExpire(key: string, expireAtMs: number): void {
    const slot = this.find(key);
    assert(slot >= 0, 'expire on a missing key');
    if (!Number.isNaN(this.expireAt[slot] as number)) this.removeExpireAt(slot, key);
    this.expireAt[slot] = expireAtMs;
    this.expires++;
    this.expiryIndex.set(expiryIndexKey(expireAtMs, key), undefined);
  }

  removeExpire(key: string): boolean {
    const slot = this.find(key);
    if (slot < 0 || Number.isNaN(this.expireAt[slot] as number)) return false;
    this.removeExpireAt(slot, key);
    return true;
  }

  /** The key with the earliest expiry, if it is due at `nowMs` (expiry <= now). */
  firstDue(nowMs: number): string | undefined {
    const first = this.expiryIndex.minKey();
    if (first === undefined) return undefined;
    const key = first.slice(EXPIRY_PREFIX_DIGITS);
    const expire = this.getExpire(key);
    assert(expire !== undefined, 'expiry index out of step');
    return expire <= nowMs ? key : undefined;
  }

  /** The key in `slot`, or undefined for a free or out-of-range slot. */
  keyAt(slot: number): string | undefined {
    if (slot < 0 || slot >= this.slotCountValue || this.keyChunk[slot] === FREE) return undefined;
    return this.keyString(slot);
  }

  /** Every live key, in slot order. Safe against changes while iterating (by slot index). */
  *keys(): IterableIterator<string> {
    for (let slot = 0; slot < this.slotCountValue; slot++) {
      if (this.keyChunk[slot] !== FREE) yield this.keyString(slot);
    }
  }

  /**
   * Check every internal invariant (tests): the index finds each live key at
   * its slot, the counts agree, each chunk's live byte count is the sum of the
   * records that slots point at, and the expiry index matches the slots.
   */
  checkInvariants(): void {
    let liveSlots = 0;
    let withExpire = 0;
    const liveBytes = new Array<number>(this.chunks.length).fill(0);
    for (let slot = 0; slot < this.slotCountValue; slot++) {
      const chunk = this.keyChunk[slot] as number;
      if (chunk === FREE) continue;
      liveSlots++;
      const key = this.keyString(slot);
      this.memoKey = undefined;
      assert(this.find(key) === slot, `index finds key at slot ${slot}`);
      const keyRecord = this.chunks[chunk] as Buffer;
      assert(keyRecord.readUInt32LE(this.keyOffset[slot] as number) === slot, 'key record back-reference');
      liveBytes[chunk] = (liveBytes[chunk] as number) + RECORD_HEADER_BYTES + key.length;
      const valueChunk = this.valueChunk[slot] as number;
      if (valueChunk === VALUE_OBJECT) {
        assert(this.objects.has(slot), 'object value present');
      } else {
        assert(!this.objects.has(slot), 'no stray object value');
        const buf = this.chunks[valueChunk] as Buffer;
        const at = this.valueOffset[slot] as number;
        assert(buf.readUInt32LE(at) === slot, 'value record back-reference');
        liveBytes[valueChunk] =
          (liveBytes[valueChunk] as number) + RECORD_HEADER_BYTES + buf.readUInt32LE(at + 4);
      }
      if (!Number.isNaN(this.expireAt[slot] as number)) {
        withExpire++;
        assert(this.expiryIndex.has(expiryIndexKey(this.expireAt[slot] as number, key)), 'expiry indexed');
      }
    }
    assert(liveSlots === this.live, 'live count');
    assert(withExpire === this.expires && this.expiryIndex.size === this.expires, 'expiry count');
    let objects = 0;
    for (const slot of this.objects.keys()) {
      assert(slot < this.slotCountValue && this.keyChunk[slot] !== FREE, 'object of a live slot');
      objects++;
    }
    assert(objects === this.objects.size, 'object count');
    for (let c = 0; c < this.chunks.length; c++) {
      if (this.chunks[c] === undefined) continue;
      assert(this.chunkLive[c] === liveBytes[c], `chunk ${c} live bytes`);
      if (c !== this.current) {
        const size = (this.chunks[c] as Buffer).length;
        assert((this.chunkLive[c] as number) >= size * COMPACT_BELOW, `chunk ${c} is at least half live`);
      }
    }
    let filled = 0;
    let indexed = 0;
    for (let i = 0; i < this.table.length; i++) {
      const entry = this.table[i] as number;
      if (entry !== EMPTY) filled++;
      if (entry >= 0) indexed++;
    }
    assert(filled === this.tableFilled && indexed === this.live, 'index counts');
    assert(this.tableFilled * 2 <= this.table.length, 'index at most half full');
  }

  // --- the hash index ------------------------------------------------------------------------

  /** The hash of the key that the last find() computed (valid when it missed). */
  private lastHash = 0;

  private find(key: string): number {
    if (key === this.memoKey) return this.memoSlot;
    const h = hashString(key);
    this.lastHash = h;
    const table = this.table;
    const mask = table.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const slot = table[i] as number;
      if (slot === EMPTY) return -1;
      if (slot >= 0 && this.slotHash[slot] === h && this.keyEquals(slot, key)) {
        this.memoKey = key;
        this.memoSlot = slot;
        return slot;
      }
    }
  }

  private findBytes(h: number, buf: Buffer, start: number, length: number): number {
    const table = this.table;
    const mask = table.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const slot = table[i] as number;
      if (slot === EMPTY) return -1;
      if (slot >= 0 && this.slotHash[slot] === h) {
        const chunk = this.chunks[this.keyChunk[slot] as number] as Buffer;
        const at = this.keyOffset[slot] as number;
        if (chunk.readUInt32LE(at + 4) !== length) continue;
        const from = at + RECORD_HEADER_BYTES;
        let same = true;
        for (let j = 0; j < length; j++) {
          if (chunk[from + j] !== buf[start + j]) {
            same = false;
            break;
          }
        }
        if (same) return slot;
      }
    }
  }

  private keyEquals(slot: number, key: string): boolean {
    const chunk = this.chunks[this.keyChunk[slot] as number] as Buffer;
    const at = this.keyOffset[slot] as number;
    const length = key.length;
    if (chunk.readUInt32LE(at + 4) !== length) return false;
    const from = at + RECORD_HEADER_BYTES;
    for (let j = 0; j < length; j++) if (chunk[from + j] !== key.charCodeAt(j)) return false;
    return true;
  }

  /** Allocate a slot for a new key with hash `h` and index it. The caller writes its key record. */
  private newSlot(h: number): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.slotCountValue;
      if (slot === this.slotHash.length) this.growSlots(slot * 2);
      this.slotCountValue++;
    }
    assert(this.keyChunk[slot] === FREE, 'a new key takes a free slot');
    this.slotHash[slot] = h;
    this.valueChunk[slot] = VALUE_OBJECT;
    this.expireAt[slot] = Number.NaN;
    this.live++;
    if ((this.tableFilled + 1) * 2 > this.table.length) this.rebuildIndex();
    const table = this.table;
    const mask = table.length - 1;
    let i = h & mask;
    while ((table[i] as number) >= 0) i = (i + 1) & mask;
    if (table[i] === EMPTY) this.tableFilled++;
    table[i] = slot;
    return slot;
  }

  private unindex(slot: number): void {
    const table = this.table;
    const mask = table.length - 1;
    for (let i = (this.slotHash[slot] as number) & mask; ; i = (i + 1) & mask) {
      const entry = table[i] as number;
      assert(entry !== EMPTY, 'a live key is indexed');
      if (entry === slot) {
        table[i] = TOMBSTONE;
        return;
      }
    }
  }

  /** A new table at most a quarter full (tombstones dropped), from the slots' stored hashes. */
  private rebuildIndex(): void {
    let capacity = INITIAL_TABLE;
    while (capacity < (this.live + 1) * 4) capacity *= 2;
    const table = new Int32Array(capacity).fill(EMPTY);
    const mask = capacity - 1;
    for (let slot = 0; slot < this.slotCountValue; slot++) {
      if (this.keyChunk[slot] === FREE) continue;
      let i = (this.slotHash[slot] as number) & mask;
      while (table[i] !== EMPTY) i = (i + 1) & mask;
      table[i] = slot;
    }
    this.table = table;
    // The slot being added (keyChunk still FREE) is indexed by the caller.
    this.tableFilled = this.live - 1;
  }

  private growSlots(length: number): void {
    this.slotHash = grownUint32(this.slotHash, length);
    this.keyChunk = grownInt32(this.keyChunk, length, FREE);
    this.keyOffset = grownUint32(this.keyOffset, length);
    this.valueChunk = grownInt32(this.valueChunk, length, VALUE_OBJECT);
    this.valueOffset = grownUint32(this.valueOffset, length);
    const expireAt = new Float64Array(length).fill(Number.NaN);
    expireAt.set(this.expireAt);
    this.expireAt = expireAt;
  }

  private removeExpireAt(slot: number, key: string): void {
    const removed = this.expiryIndex.delete(expiryIndexKey(this.expireAt[slot] as number, key));
    assert(removed, 'expiry index out of step');
    this.expireAt[slot] = Number.NaN;
    this.expires--;
  }

  // --- values --------------------------------------------------------------------------------

  private valueAt(slot: number): Value {
    const chunk = this.valueChunk[slot] as number;
    if (chunk === VALUE_OBJECT) return this.objects.get(slot) as Value;
    const buf = this.chunks[chunk] as Buffer;
    const at = this.valueOffset[slot] as number;
    const from = at + RECORD_HEADER_BYTES;
    return buf.toString('latin1', from, from + buf.readUInt32LE(at + 4));
  }

  private storeValue(slot: number, value: Value): void {
    if (typeof value === 'string') {
      const at = this.reserveRecord(slot, value.length);
      (this.chunks[this.current] as Buffer).write(value, at + RECORD_HEADER_BYTES, value.length, 'latin1');
      this.valueChunk[slot] = this.current;
      this.valueOffset[slot] = at;
    } else if (!isHash(value) && value.length <= INLINE_STRING_MAX_BYTES) {
      this.writeValueBytes(slot, value, 0, value.length);
    } else {
      this.objects.set(slot, value);
      this.valueChunk[slot] = VALUE_OBJECT;
    }
  }

  private writeValueBytes(slot: number, buf: Buffer, start: number, length: number): void {
    const at = this.reserveRecord(slot, length);
    copyBytes(buf, start, length, this.chunks[this.current] as Buffer, at + RECORD_HEADER_BYTES);
    this.valueChunk[slot] = this.current;
    this.valueOffset[slot] = at;
  }

  /** Drop the slot's value (arena bytes or object); its valueChunk is left to the caller. */
  private releaseValue(slot: number): void {
    const chunk = this.valueChunk[slot] as number;
    if (chunk === VALUE_OBJECT) {
      this.objects.delete(slot);
      return;
    }
    this.valueChunk[slot] = VALUE_OBJECT;
    this.release(chunk, this.valueOffset[slot] as number);
  }

  // --- the arena -----------------------------------------------------------------------------

  private writeKeyString(slot: number, key: string): void {
    const at = this.reserveRecord(slot, key.length);
    (this.chunks[this.current] as Buffer).write(key, at + RECORD_HEADER_BYTES, key.length, 'latin1');
    this.keyChunk[slot] = this.current;
    this.keyOffset[slot] = at;
  }

  private keyString(slot: number): string {
    const buf = this.chunks[this.keyChunk[slot] as number] as Buffer;
    const at = this.keyOffset[slot] as number;
    const from = at + RECORD_HEADER_BYTES;
    return buf.toString('latin1', from, from + buf.readUInt32LE(at + 4));
  }

  /** Room for a record of `length` bytes in the current chunk; writes its header and returns its offset. */
  private reserveRecord(slot: number, length: number): number {
    const size = RECORD_HEADER_BYTES + length;
    let chunk = this.current >= 0 ? (this.chunks[this.current] as Buffer) : undefined;
    if (chunk === undefined || (this.chunkEnd[this.current] as number) + size > chunk.length) {
      this.openChunk(Math.max(this.arenaChunkBytes, size));
      chunk = this.chunks[this.current] as Buffer;
    }
    const c = this.current;
    const at = this.chunkEnd[c] as number;
    chunk.writeUInt32LE(slot, at);
    chunk.writeUInt32LE(length, at + 4);
    this.chunkEnd[c] = at + size;
    this.chunkLive[c] = (this.chunkLive[c] as number) + size;
    return at;
  }

  private openChunk(bytes: number): void {
    const previous = this.current;
    const id = this.freeChunkIds.pop() ?? this.chunks.length;
    this.chunks[id] = Buffer.allocUnsafeSlow(bytes);
    this.chunkLive[id] = 0;
    this.chunkEnd[id] = 0;
    this.current = id;
    // The chunk that stops being current may already be mostly dead.
    if (previous >= 0) this.unsettled.push(previous);
  }

  /** The record at (chunk, offset) is dead. */
  private release(chunk: number, offset: number): void {
    const buf = this.chunks[chunk] as Buffer;
    const size = RECORD_HEADER_BYTES + buf.readUInt32LE(offset + 4);
    const left = (this.chunkLive[chunk] as number) - size;
    assert(left >= 0, 'arena live bytes');
    this.chunkLive[chunk] = left;
    if (chunk !== this.current) this.unsettled.push(chunk);
  }

  /**
   * Compact or drop the chunks that lost records or stopped being current
   * during an operation. Run at the end of every public mutation, when every
   * slot points at complete records: a compaction never runs in the middle of
   * one (between a record's reservation and its bytes, or its slot's link).
   */
  private settle(): void {
    for (let rounds = 0; this.unsettled.length > 0; rounds++) {
      assert(rounds <= 1_000_000 + this.chunks.length * 4, 'arena settle rounds');
      this.checkChunk(this.unsettled.pop() as number);
    }
  }

  private checkChunk(chunk: number): void {
    const buf = this.chunks[chunk];
    if (buf === undefined || chunk === this.adopting || chunk === this.current) return;
    const left = this.chunkLive[chunk] as number;
    if (left === 0) this.dropChunk(chunk);
    else if (left < buf.length * COMPACT_BELOW) this.compact(chunk);
  }

  private dropChunk(chunk: number): void {
    assert(chunk !== this.current && this.chunkLive[chunk] === 0, 'drop a dead chunk');
    this.chunks[chunk] = undefined;
    this.freeChunkIds.push(chunk);
  }

  /** Move the chunk's live records (those a slot still points at) to the current chunk, then drop it. */
  private compact(chunk: number): void {
    assert(chunk !== this.current, 'compact a full chunk');
    const buf = this.chunks[chunk] as Buffer;
    const end = this.chunkEnd[chunk] as number;
    for (let at = 0; at < end; ) {
      const slot = buf.readUInt32LE(at);
      const length = buf.readUInt32LE(at + 4);
      const size = RECORD_HEADER_BYTES + length;
      const isKey =
        slot < this.slotCountValue && this.keyChunk[slot] === chunk && this.keyOffset[slot] === at;
      const isValue =
        !isKey &&
        slot < this.slotCountValue &&
        this.valueChunk[slot] === chunk &&
        this.valueOffset[slot] === at;
      if (isKey || isValue) {
        // Moving may open a new current chunk; the one it replaces is checked in settle().
        this.chunkLive[chunk] = (this.chunkLive[chunk] as number) - size;
        const moved = this.reserveRecord(slot, length);
        copyBytes(
          buf,
          at + RECORD_HEADER_BYTES,
          length,
          this.chunks[this.current] as Buffer,
          moved + RECORD_HEADER_BYTES,
        );
        if (isKey) {
          this.keyChunk[slot] = this.current;
          this.keyOffset[slot] = moved;
        } else {
          this.valueChunk[slot] = this.current;
          this.valueOffset[slot] = moved;
        }
      }
      at += size;
    }
    assert(this.chunkLive[chunk] === 0, 'a compacted chunk has no live records');
    this.dropChunk(chunk);
  }
}
