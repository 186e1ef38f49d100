/**
 * JSON text for the small plain values that jobs carry (data, return values, progress): the
 * same text as JSON.stringify, in fewer instructions for them. Node 20's JSON.stringify has a
 * fixed cost per call and per value (its builder, the toJSON lookups, a string of parts) that
 * was a third of the queue core's add -> lease -> ack cycle with a 100-byte payload (callgrind:
 * 15,705 instructions a cycle, 10,460 with the payload's text given; 13,549 with this).
 * Instructions a call, native and here: `{"payload":"<86 chars>"}` 5,392 and 3,115; three short
 * string fields 5,501 and 4,984; mixed numbers, strings, an array and an object 7,180 and
 * 7,078; an order with nested items 11,170 and 10,905. Strings gain most; numbers about break
 * even.
 *
 * The fast path writes only what cannot come out differently from JSON.stringify, and gives up
 * on everything else, which then goes to JSON.stringify whole:
 *  - objects whose prototype is Object.prototype or null and that have no `toJSON`, their
 *    enumerable string keys in for-in order (own keys only, JSON.stringify's order, once it is
 *    checked that Object.prototype has no enumerable keys of its own);
 *  - arrays (Array.isArray) without `toJSON`, index by index;
 *  - strings, put between quotes when none of their units needs an escape (`"`, `\`, a control
 *    character, any surrogate), otherwise quoted by JSON.stringify;
 *  - safe integers digit group by digit group, other finite numbers by JSON.stringify (both
 *    Number::toString's text, -0 is "0"; neither through V8's number-to-text cache, see
 *    integerText), non-finite ones as null;
 *  - booleans and null.
 * It gives up at undefined, functions, symbols and bigints anywhere (JSON leaves them out,
 * writes null or throws), at other objects (Dates, boxed primitives, class instances, typed
 * arrays, Maps), deeper than MAX_DEPTH (where a cycle ends up: JSON.stringify then throws), and
 * once the text passes MAX_CHARS, where the per-call cost no longer matters. A value that it
 * gives up on is read twice (getters and proxy traps run twice). test/property/json-text.test.ts
 * compares the two on arbitrary values.
 */

/** Nesting followed before giving up (a cycle gets there). */
const MAX_DEPTH = 16;

/** Text length past which the fast path gives up: JSON.stringify's fixed cost no longer counts. */
const MAX_CHARS = 16 * 1024;

/** A UTF-16 unit that JSON.stringify escapes: `"`, `\`, a control character, or a surrogate. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** Keys up to this length have their quoted form (`"key":`) cached; objects repeat their keys. */
const CACHED_KEY_CHARS = 64;
const CACHED_KEYS_MAX = 1024;
const quotedKeys = new Map<string, string>();

function quote(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = `${quote(key)}:`;
    if (key.length <= CACHED_KEY_CHARS && quotedKeys.size < CACHED_KEYS_MAX) quotedKeys.set(key, quoted);
  }
  return quoted;
}

/** The texts of 0..999, and of 000..999 for the groups after the first. */
const INTEGER_TEXTS = Array.from({ length: 1000 }, (_, i) => String(i));
const DIGIT_GROUPS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

/**
 * A non-negative safe integer's text, three digits at a time. Not `${n}`: V8 keeps the text of
 * recent numbers in a cache in the old generation, so each new number's text would be promoted
 * (measured: 16 MiB of heap after each scavenge against 6, and 5 full GCs against none, over
 * three million objects with counters). Joins of short texts make fresh flat strings.
 */
function integerText(n: number): string {
  if (n < 1000) return INTEGER_TEXTS[n] as string;
  const high = Math.floor(n / 1000);
  return integerText(high) + (DIGIT_GROUPS[n - high * 1000] as string);
}

/** The JSON text of `value`, or undefined to give up. */
function fast(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      return value.length <= MAX_CHARS ? quote(value) : undefined;
    case 'number':
      if (Number.isSafeInteger(value)) return value < 0 ? `-${integerText(-value)}` : integerText(value);
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH) return undefined;
      return Array.isArray(value) ? fastArray(value, depth + 1) : fastObject(value, depth + 1);
    default:
      return undefined;
  }
}

function fastArray(array: unknown[], depth: number): string | undefined {
  if ((array as { toJSON?: unknown }).toJSON !== undefined) return undefined;
  const n = array.length;
  if (n === 0) return '[]';
  let text = fast(array[0], depth);
  if (text === undefined) return undefined;
  text = `[${text}`;
  for (let i = 1; i < n; i++) {
    const part = fast(array[i], depth);
    if (part === undefined || text.length > MAX_CHARS) return undefined;
    text += `,${part}`;
  }
  return `${text}]`;
}

function fastObject(object: object, depth: number): string | undefined {
  const proto: unknown = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const record = object as Record<string, unknown>;
  if (record.toJSON !== undefined) return undefined;
  let text = '{';
  for (const key in record) {
    const part = fast(record[key], depth);
    if (part === undefined || text.length + key.length > MAX_CHARS) return undefined;
    text += text.length === 1 ? `${quotedKey(key)}${part}` : `,${quotedKey(key)}${part}`;
  }
  return `${text}}`;
}

/** Does Object.prototype have an enumerable key (for-in would then see it on every object)? */
function prototypeEnumerable(): boolean {
  for (const _ in Object.prototype) return true;
  return false;
}

/** The fast path alone: JSON.stringify's text for `value`, or undefined where it gives up (exported for its tests). */
export function fastJsonText(value: unknown): string | undefined {
  if (prototypeEnumerable()) return undefined;
  const text = fast(value, 0);
  return text !== undefined && text.length <= MAX_CHARS ? text : undefined;
}

/** JSON.stringify(value): the same text (or undefined, or the same throw), by the fast path when it can. */
export function jsonText(value: unknown): string | undefined {
  return fastJsonText(value) ?? JSON.stringify(value);
}
