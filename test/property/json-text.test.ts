// src/util/json.ts against JSON.stringify: on arbitrary values (boxed values, Maps, Sets, Dates,
// typed arrays, sparse arrays, bigints, null prototypes, strings of any UTF-16 units, lone
// surrogates included) jsonText gives the same text or throws the same error class; where the
// fast path answers by itself, it answers with JSON.stringify's text; and on plain JSON values
// it does answer by itself (so that the comparison above is not only of JSON.stringify with
// itself). Then the cases that the fast path must give up on, one by one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fastJsonText, jsonText } from '../../src/util/json.js';

/** Any UTF-16 unit, with the ones JSON escapes (controls, quote, backslash, surrogates) drawn often. */
const unit = fc.oneof(
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\ud800', '\udfff', '\u2028', 'é'),
  fc.constantFrom('a', 'b', 'x', '1'),
);
const anyString = fc.string({ unit, maxLength: 40 });

function outcome(run: () => string | undefined): { text?: string | undefined; error?: string } {
  try {
    return { text: run() };
  } catch (err) {
    return { error: (err as Error).constructor.name };
  }
}

function expectSame(value: unknown): void {
  expect(outcome(() => jsonText(value))).toEqual(outcome(() => JSON.stringify(value)));
  const fast = fastJsonText(value);
  if (fast !== undefined) expect(fast).toBe(JSON.stringify(value));
}

describe('jsonText equals JSON.stringify', () => {
  it('on arbitrary values', () => {
    fc.assert(
      fc.property(
        fc.anything({
          key: anyString,
          values: [
            anyString,
            fc.double(),
            fc.integer(),
            fc.boolean(),
            fc.constant(null),
            fc.constant(undefined),
          ],
          withBoxedValues: true,
          withMap: true,
          withSet: true,
          withObjectString: true,
          withNullPrototype: true,
          withBigInt: true,
          withDate: true,
          withTypedArray: true,
          withSparseArray: true,
          maxDepth: 4,
        }),
        (value) => expectSame(value),
      ),
      { numRuns: 2000 },
    );
  });

  it('on plain JSON values, by the fast path alone', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const fast = fastJsonText(value);
        expect(fast).toBe(JSON.stringify(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('on strings of any units, keys included', () => {
    fc.assert(
      fc.property(anyString, anyString, (key, text) => {
        expectSame(text);
        expectSame({ [key]: text });
        expectSame([text, { [text]: key }]);
        expect(fastJsonText({ [key]: text })).toBe(JSON.stringify({ [key]: text }));
      }),
      { numRuns: 2000 },
    );
  });

  it('on numbers: digit groups, -0, NaN, infinities, exponents, fractions', () => {
    const integers = [999, 1000, 1001, 100_000, 1_000_007, -123_456_789, 2 ** 53 - 1, -(2 ** 53 - 1)];
    const others = [
      -0,
      0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      -1e21,
      1e21,
      5e-324,
      0.1 + 0.2,
      2 ** 53,
      -1.5,
    ];
    for (const n of [...integers, ...others]) {
      expectSame(n);
      expectSame({ n });
      expectSame([n]);
      expect(fastJsonText([n])).toBe(JSON.stringify([n]));
    }
  });

  it('orders keys as JSON.stringify does: integer keys first, then insertion order', () => {
    const value = { b: 1, 2: 'two', a: [1], 1: 'one', '-1': true, '01': null };
    expect(fastJsonText(value)).toBe(JSON.stringify(value));
  });
});

describe('jsonText gives up where JSON.stringify differs from plain data', () => {
  it('toJSON on an object, a nested object, an array, a Date', () => {
    class Tagged extends Array {
      toJSON() {
        return 'tagged';
      }
    }
    const values = [
      { toJSON: () => ({ replaced: true }) },
      { outer: { toJSON: () => 7 } },
      Tagged.from([1, 2]),
      { when: new Date(0) },
    ];
    for (const value of values) {
      expect(fastJsonText(value)).toBeUndefined();
      expect(jsonText(value)).toBe(JSON.stringify(value));
    }
  });

  it('a toJSON that for-in does not see: non-enumerable, own or on Object.prototype', () => {
    const own = { a: 1 };
    Object.defineProperty(own, 'toJSON', { value: () => 'own', enumerable: false });
    expect(fastJsonText(own)).toBeUndefined();
    expect(jsonText(own)).toBe('"own"');
    Object.defineProperty(Object.prototype, 'toJSON', {
      value: () => 'inherited',
      enumerable: false,
      configurable: true,
    });
    try {
      expect(fastJsonText({ a: 1 })).toBeUndefined();
      expect(jsonText({ a: [1] })).toBe('"inherited"');
    } finally {
      // biome-ignore lint/suspicious/noExplicitAny: undoing the definition above
      delete (Object.prototype as any).toJSON;
    }
    expect(fastJsonText({ a: 1 })).toBe('{"a":1}');
  });

  it('undefined, functions and symbols as values; symbols as keys; non-enumerable keys', () => {
    const hidden = { shown: 1 };
    Object.defineProperty(hidden, 'hidden', { value: 2, enumerable: false });
    const values: unknown[] = [
      { a: undefined, b: 1 },
      [undefined, () => 1, Symbol('s')],
      { f() {} },
      { [Symbol('k')]: 1, k: 2 },
      hidden,
      undefined,
      () => 1,
    ];
    for (const value of values) expect(jsonText(value)).toBe(JSON.stringify(value));
    expect(fastJsonText({ [Symbol('k')]: 1, k: 2 })).toBe('{"k":2}');
    expect(fastJsonText(hidden)).toBe('{"shown":1}');
  });

  it('class instances, null prototypes, boxed values, Maps, sparse arrays', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    const bare = Object.create(null) as Record<string, unknown>;
    bare.k = 'v';
    // biome-ignore lint/suspicious/noSparseArray: a hole is the case under test
    const sparse = [1, , 3];
    const values: unknown[] = [
      new Point(1, 2),
      new String('s'),
      new Map([[1, 2]]),
      sparse,
      new Uint8Array(2),
    ];
    for (const value of values) {
      expect(fastJsonText(value)).toBeUndefined();
      expect(jsonText(value)).toBe(JSON.stringify(value));
    }
    expect(fastJsonText(bare)).toBe('{"k":"v"}');
  });

  it('getters run, and their values are written', () => {
    let reads = 0;
    const value = {
      get lazy() {
        reads++;
        return 'computed';
      },
    };
    expect(jsonText(value)).toBe('{"lazy":"computed"}');
    expect(reads).toBe(1);
  });

  it('bigints and cycles throw the same errors', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    for (const value of [{ n: 1n }, cycle, [[cycle]]]) {
      expect(outcome(() => jsonText(value))).toEqual(outcome(() => JSON.stringify(value)));
      expect(outcome(() => jsonText(value)).error).toBe('TypeError');
    }
  });

  it('deep nesting and long texts go to JSON.stringify whole', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 40; i++) deep = i % 2 === 0 ? [deep] : { d: deep };
    expect(fastJsonText(deep)).toBeUndefined();
    expect(jsonText(deep)).toBe(JSON.stringify(deep));
    const long = Array.from({ length: 20_000 }, (_, i) => i);
    expect(fastJsonText(long)).toBeUndefined();
    expect(jsonText(long)).toBe(JSON.stringify(long));
    const longKey = { ['k'.repeat(20_000)]: 1 };
    expect(fastJsonText(longKey)).toBeUndefined();
    expect(jsonText(longKey)).toBe(JSON.stringify(longKey));
    const longString = 'y'.repeat(20_000);
    expect(fastJsonText({ longString })).toBeUndefined();
    expect(jsonText({ longString })).toBe(JSON.stringify({ longString }));
  });

  it('an enumerable key on Object.prototype sends every value to JSON.stringify', () => {
    const value = { own: 1 };
    expect(fastJsonText(value)).toBe('{"own":1}');
    // biome-ignore lint/suspicious/noExplicitAny: polluting the prototype is the case under test
    (Object.prototype as any).polluted = 'x';
    try {
      expect(fastJsonText(value)).toBeUndefined();
      expect(jsonText(value)).toBe('{"own":1}');
    } finally {
      // biome-ignore lint/suspicious/noExplicitAny: undoing the pollution above
      delete (Object.prototype as any).polluted;
    }
    expect(fastJsonText(value)).toBe('{"own":1}');
  });

  it('keys longer than the cached ones, and more distinct keys than the cache holds', () => {
    const longKey = 'k'.repeat(100);
    expect(fastJsonText({ [longKey]: 1 })).toBe(JSON.stringify({ [longKey]: 1 }));
    for (let i = 0; i < 1500; i++) {
      const value = { [`key-${i}`]: i, [`k"${i}`]: 'q' };
      expect(fastJsonText(value)).toBe(JSON.stringify(value));
    }
  });
});
