/**
 * Integers as Redis reads and writes them: signed 64-bit, decimal, no leading
 * '+', no leading zeros, no spaces (the rules of Redis's string2ll). Values are
 * bigints here because INCRBY must reach and detect the int64 edges exactly.
 */
export const INT64_MAX = (1n << 63n) - 1n;
export const INT64_MIN = -(1n << 63n);
/** Longest decimal int64: '-9223372036854775808'. */
const INT64_MAX_DIGITS = 20;

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** Parses `text` (latin1 code units = bytes) as Redis's string2ll does; undefined if it is not one. */
export function parseInt64(text: string): bigint | undefined {
  const length = text.length;
  if (length === 0 || length > INT64_MAX_DIGITS) return undefined;
  if (text === '0') return 0n;
  let index = 0;
  if (text.charCodeAt(0) === 0x2d) {
    index = 1;
    if (length === 1) return undefined;
  }
  // The first digit is 1-9: no leading zeros, and '-0' is refused.
  const first = text.charCodeAt(index);
  if (first < 0x31 || first > 0x39) return undefined;
  for (let i = index + 1; i < length; i++) {
    if (!isDigit(text.charCodeAt(i))) return undefined;
  }
  const value = BigInt(text);
  if (value > INT64_MAX || value < INT64_MIN) return undefined;
  return value;
}

/** A bigint as a RESP integer reply: a number when it is safe, else the bigint. */
export function integerReply(value: bigint): number | bigint {
  if (value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) {
    return Number(value);
  }
  return value;
}

/** 2^64 - 1: the largest SCAN cursor Redis accepts. */
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * A SCAN cursor as Redis reads it (C's strtoul): optional sign, digits, nothing
 * else; the empty string is 0 and a negative number wraps around. Undefined for
 * an invalid cursor.
 */
export function parseScanCursor(text: string): bigint | undefined {
  if (text.length === 0) return 0n;
  if (!/^[+-]?[0-9]+$/.test(text)) return undefined;
  const negative = text.charCodeAt(0) === 0x2d;
  const magnitude = BigInt(text.replace(/^[+-]/, ''));
  if (magnitude > UINT64_MAX) return undefined;
  return negative && magnitude !== 0n ? UINT64_MAX + 1n - magnitude : magnitude;
}
