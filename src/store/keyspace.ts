/**
 * The keyspace's storage: keys, values and expiry times, with no command
 * semantics. Owned here: the slot layout that gives SCAN a stable cursor, the
 * value representation, and the ordered expiry index for active expiry.
 *
 * Encoding. Keys and hash fields are latin1 strings: one UTF-16 code unit per
 * byte, so any byte sequence round-trips and string order is byte order. A
 * string value up to INLINE_STRING_MAX_BYTES is a latin1 string too (a V8
 * one-byte string costs ~16 bytes of header, a Buffer ~100); a longer one is a
 * Buffer of its own (never a view into a caller's buffer).
 *
 * Slots. Every key lives in a slot, an index into parallel arrays, and keeps it
 * for its whole life. Freed slots are reused. SCAN's cursor is the next slot to
 * visit, so a key that exists for the whole scan is returned exactly once,
 * whatever is inserted or deleted between calls.
 */

import { assert } from '../util/assert.js';
import { BTree } from './btree.js';

/** Longest string value kept as a latin1 string rather than a Buffer. */
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

export class Keyspace {
  private readonly slotByKey = new Map<string, number>();
  private slotKeys: (string | undefined)[] = [];
  private slotValues: (Value | undefined)[] = [];
  private freeSlots: number[] = [];
  private readonly expireAt = new Map<string, number>();
  /** `hex(expiry) + key` for every key with a TTL: ordered by time, then by key. */
  private expiryIndex = new BTree<string, undefined>();

  get size(): number {
    return this.slotByKey.size;
  }

  get expiresCount(): number {
    return this.expireAt.size;
  }

  /** Slots allocated so far (live and free): SCAN cursors run over [0, slotCount). */
  get slotCount(): number {
    return this.slotKeys.length;
  }

  get(key: string): Value | undefined {
    const slot = this.slotByKey.get(key);
    return slot === undefined ? undefined : this.slotValues[slot];
  }

  has(key: string): boolean {
    return this.slotByKey.has(key);
  }

  /** Sets the value; the TTL is left as it is (callers clear it when the command says so). */
  set(key: string, value: Value): void {
    const slot = this.slotByKey.get(key);
    if (slot !== undefined) {
      this.slotValues[slot] = value;
      return;
    }
    const free = this.freeSlots.pop();
    if (free !== undefined) {
      assert(this.slotKeys[free] === undefined, 'free slot is in use');
      this.slotKeys[free] = key;
      this.slotValues[free] = value;
      this.slotByKey.set(key, free);
    } else {
      this.slotByKey.set(key, this.slotKeys.length);
      this.slotKeys.push(key);
      this.slotValues.push(value);
    }
  }

  delete(key: string): boolean {
    const slot = this.slotByKey.get(key);
    if (slot === undefined) return false;
    this.removeExpire(key);
    this.slotByKey.delete(key);
    this.slotKeys[slot] = undefined;
    this.slotValues[slot] = undefined;
    if (slot === this.slotKeys.length - 1) {
      // Trim free slots at the end; a cursor past the end simply finishes the scan.
      this.slotKeys.pop();
      this.slotValues.pop();
    } else {
      this.freeSlots.push(slot);
    }
    return true;
  }

  clear(): void {
    this.slotByKey.clear();
    this.slotKeys = [];
    this.slotValues = [];
    this.freeSlots = [];
    this.expireAt.clear();
    this.expiryIndex = new BTree<string, undefined>();
  }

  getExpire(key: string): number | undefined {
    return this.expireAt.get(key);
  }

  setExpire(key: string, expireAtMs: number): void {
    assert(this.slotByKey.has(key), 'expire on a missing key');
    this.removeExpire(key);
    this.expireAt.set(key, expireAtMs);
    this.expiryIndex.set(expiryIndexKey(expireAtMs, key), undefined);
  }

  removeExpire(key: string): boolean {
    const previous = this.expireAt.get(key);
    if (previous === undefined) return false;
    this.expireAt.delete(key);
    const removed = this.expiryIndex.delete(expiryIndexKey(previous, key));
    assert(removed, 'expiry index out of step');
    return true;
  }

  /** The key with the earliest expiry, if it is due at `nowMs` (expiry <= now). */
  firstDue(nowMs: number): string | undefined {
    const first = this.expiryIndex.minKey();
    if (first === undefined) return undefined;
    const key = first.slice(EXPIRY_PREFIX_DIGITS);
    const expire = this.expireAt.get(key);
    assert(expire !== undefined, 'expiry index out of step');
    return expire <= nowMs ? key : undefined;
  }

  /** The key in `slot`, or undefined for a free or out-of-range slot. */
  keyAt(slot: number): string | undefined {
    return this.slotKeys[slot];
  }

  /** Every live key, in slot order. Safe against changes while iterating (by slot index). */
  *keys(): IterableIterator<string> {
    for (let slot = 0; slot < this.slotKeys.length; slot++) {
      const key = this.slotKeys[slot];
      if (key !== undefined) yield key;
    }
  }
}
