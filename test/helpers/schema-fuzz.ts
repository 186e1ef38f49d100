/**
 * fast-check arbitraries built from the JSON Schemas of api/: values that
 * follow a schema, values that break it at one place (a wrong type, a number
 * just out of range, a string one character too long, a missing required
 * property, an unknown or prototype-polluting key), and arbitrary JSON. Only
 * the keywords api/*.json uses are understood; an unknown keyword throws, so
 * a new one in the contract is noticed here rather than silently fuzzed less.
 */
import fc from 'fast-check';

export type Schema = Record<string, unknown>;

/** A number written into the JSON text as is (1e999, 123456789012345678901234567890, -0). */
export class RawNumber {
  constructor(readonly text: string) {}
}

/** A property left out of a generated object. */
const OMIT = Symbol('omit');

const KNOWN_KEYWORDS = new Set([
  '$id',
  '$ref',
  'title',
  'description',
  'type',
  'enum',
  'anyOf',
  'properties',
  'required',
  'additionalProperties',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'items',
  'minItems',
  'maxItems',
  'minProperties',
]);

/** Keys that a careless merge would turn into prototype pollution. */
export const POLLUTING_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];

const RAW_NUMBERS = [
  '1e999',
  '-1e999',
  '1e-999',
  '-0',
  '123456789012345678901234567890',
  '9007199254740993',
  '0.1e1',
  '1E2',
];

/** Strings that stress encoders: unicode, lone surrogates, control characters, NUL, RTL, emoji. */
const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff',
  'x\ud83d',
  '😀',
  '👩‍👩‍👧‍👦',
  '\u202eevil',
  '\r\n*1\r\n$4\r\nPING\r\n',
  '../../etc/passwd',
  '%00',
  '\u0024{jndi:ldap://x}',
  '<script>',
  "'; DROP TABLE jobs; --",
  'ǅ',
];

export interface SchemaFuzz {
  /** Values that validate against the schema (mostly). */
  valid(schema: Schema): fc.Arbitrary<unknown>;
  /** Values shaped like the schema with zero or more faults inside. */
  shaped(schema: Schema): fc.Arbitrary<unknown>;
  /** Values that break the schema at its top. */
  wrong(schema: Schema): fc.Arbitrary<unknown>;
}

export interface SchemaFuzzOptions {
  /** Schemas by $id, for `$ref`. */
  readonly schemas: ReadonlyMap<string, Schema>;
  /** Replace the arbitrary of a property by name (e.g. keep `waitMs` short). */
  readonly overrides?: Readonly<Record<string, fc.Arbitrary<unknown>>>;
  /** Longest generated string (long strings near the body limit are made elsewhere). */
  readonly maxString?: number;
}

/** Arbitrary JSON, small but varied, with nasty strings and raw numbers mixed in. */
export function anyJson(maxDepth = 3): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    fc.constantFrom(...NASTY_STRINGS),
    fc.constantFrom(...RAW_NUMBERS).map((text) => new RawNumber(text)),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
  );
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth },
      { arbitrary: leaf, weight: 4 },
      { arbitrary: fc.array(tie('value'), { maxLength: 4 }), weight: 1 },
      {
        arbitrary: fc
          .array(
            fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...POLLUTING_KEYS)), tie('value')),
            {
              maxLength: 4,
            },
          )
          .map((entries) => new Entries(entries)),
        weight: 1,
      },
    ),
  }));
  // Objects are built as entry lists so that `__proto__` stays a key; see toJsonText.
  return value.map(entriesToObjects);
}

/** An object as a list of entries, so that `__proto__` stays an own key. */
class Entries {
  constructor(readonly entries: ReadonlyArray<readonly [string, unknown]>) {}
}

/** Entry lists from anyJson become plain objects with own keys (never prototypes). */
function entriesToObjects(value: unknown): unknown {
  if (value instanceof Entries) {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of value.entries) setOwn(out, key, entriesToObjects(inner));
    return out;
  }
  if (Array.isArray(value)) return value.map(entriesToObjects);
  return value;
}

/** Own property, even for `__proto__`. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * JSON text of a generated value: RawNumber is written verbatim, own keys
 * (including `__proto__`) are written as keys, and undefined drops the key.
 */
export function toJsonText(value: unknown): string {
  if (value instanceof RawNumber) return value.text;
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') {
    // JSON.stringify writes lone surrogates as \udXXX escapes, which is what we want to send.
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(',')}]`;
  const parts: string[] = [];
  for (const key of Object.keys(value)) {
    const inner = (value as Record<string, unknown>)[key];
    if (inner === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${toJsonText(inner)}`);
  }
  return `{${parts.join(',')}}`;
}

export function schemaFuzz(options: SchemaFuzzOptions): SchemaFuzz {
  const maxString = options.maxString ?? 40;
  const overrides = options.overrides ?? {};

  const resolve = (schema: Schema): Schema => {
    for (const key of Object.keys(schema)) {
      if (!KNOWN_KEYWORDS.has(key))
        throw new Error(`schema-fuzz: unknown keyword '${key}' in ${JSON.stringify(schema)}`);
    }
    if (typeof schema.$ref === 'string') {
      const target = options.schemas.get(schema.$ref);
      if (!target) throw new Error(`schema-fuzz: no schema ${schema.$ref}`);
      return resolve(target);
    }
    return schema;
  };

  const types = (schema: Schema): string[] => {
    if (Array.isArray(schema.type)) return schema.type as string[];
    if (typeof schema.type === 'string') return [schema.type];
    return [];
  };

  const validOfType = (schema: Schema, type: string, depth: number): fc.Arbitrary<unknown> => {
    switch (type) {
      case 'string': {
        if (typeof schema.pattern === 'string') return fc.stringMatching(new RegExp(schema.pattern));
        const minLength = (schema.minLength as number | undefined) ?? 0;
        const maxLength = Math.min((schema.maxLength as number | undefined) ?? maxString, maxString);
        return fc.oneof(
          fc.string({ minLength, maxLength: Math.max(minLength, maxLength) }),
          fc.string({
            unit: 'grapheme',
            minLength,
            maxLength: Math.max(minLength, Math.floor(maxLength / 2)),
          }),
        );
      }
      case 'integer': {
        const min = (schema.minimum as number | undefined) ?? -(2 ** 31);
        const max = (schema.maximum as number | undefined) ?? 2 ** 31;
        const bounded = fc.integer({ min: Math.max(min, -(2 ** 31)), max: Math.min(max, 2 ** 31) });
        return fc.oneof(bounded, fc.constantFrom(min, max));
      }
      case 'number': {
        const min = (schema.minimum as number | undefined) ?? -1e9;
        const max = (schema.maximum as number | undefined) ?? 1e9;
        return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
      }
      case 'boolean':
        return fc.boolean();
      case 'null':
        return fc.constant(null);
      case 'array': {
        const items = schema.items as Schema | undefined;
        const minLength = (schema.minItems as number | undefined) ?? 0;
        const maxLength = Math.min((schema.maxItems as number | undefined) ?? 4, Math.max(minLength, 4));
        return fc.array(items && depth < 4 ? valid(items, depth + 1) : anyJson(1), { minLength, maxLength });
      }
      case 'object': {
        if (!schema.properties) {
          const additional = schema.additionalProperties;
          const inner =
            additional && typeof additional === 'object'
              ? valid(additional as Schema, depth + 1)
              : anyJson(1);
          return fc.dictionary(fc.string({ maxLength: 8 }), inner, { maxKeys: 3 });
        }
        return objectOf(schema, depth, false);
      }
      default:
        throw new Error(`schema-fuzz: type ${type}`);
    }
  };

  const objectOf = (schema: Schema, depth: number, faulty: boolean): fc.Arbitrary<unknown> => {
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    const required = new Set((schema.required as string[] | undefined) ?? []);
    const names = Object.keys(properties);
    const arbitraries = names.map((name) => {
      const override = overrides[name];
      const good = override ?? (depth < 4 ? valid(properties[name] as Schema, depth + 1) : anyJson(1));
      if (!faulty) return required.has(name) ? good : fc.option(good, { nil: OMIT, freq: 2 });
      const bad = depth < 4 ? wrong(properties[name] as Schema, depth + 1) : anyJson(1);
      const nested = override ?? (depth < 4 ? shaped(properties[name] as Schema, depth + 1) : good);
      return fc.oneof(
        { arbitrary: good, weight: 5 },
        { arbitrary: nested, weight: 2 },
        { arbitrary: bad, weight: 2 },
        { arbitrary: fc.constant(OMIT), weight: required.has(name) ? 1 : 3 },
      );
    });
    const extras = faulty
      ? fc.oneof(
          { arbitrary: fc.constant([] as Array<[string, unknown]>), weight: 6 },
          {
            arbitrary: fc.array(
              fc.tuple(
                fc.oneof(fc.constantFrom(...POLLUTING_KEYS), fc.string({ maxLength: 10 })),
                anyJson(2),
              ),
              { minLength: 1, maxLength: 3 },
            ),
            weight: 1,
          },
        )
      : fc.constant([] as Array<[string, unknown]>);
    return fc.tuple(fc.tuple(...arbitraries), extras).map(([values, extra]) => {
      const out: Record<string, unknown> = {};
      names.forEach((name, i) => {
        const value = values[i];
        if (value !== OMIT) setOwn(out, name, value);
      });
      for (const [key, value] of extra) setOwn(out, key, value);
      return out;
    });
  };

  function valid(raw: Schema, depth = 0): fc.Arbitrary<unknown> {
    const schema = resolve(raw);
    if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
    if (Array.isArray(schema.anyOf))
      return fc.oneof(...(schema.anyOf as Schema[]).map((s) => valid(s, depth + 1)));
    const list = types(schema);
    if (list.length === 0) return anyJson(2);
    return fc.oneof(...list.map((type) => validOfType(schema, type, depth)));
  }

  function wrong(raw: Schema, depth = 0): fc.Arbitrary<unknown> {
    const schema = resolve(raw);
    const list = types(schema);
    const faults: fc.Arbitrary<unknown>[] = [
      fc.constantFrom<unknown>(null, true, false, 0, -1, '', '1', [], {}, 'null'),
      fc.constantFrom(...RAW_NUMBERS).map((text) => new RawNumber(text)),
      fc.constantFrom(...NASTY_STRINGS),
    ];
    if (list.includes('integer') || list.includes('number')) {
      const min = schema.minimum as number | undefined;
      const max = schema.maximum as number | undefined;
      const edges: unknown[] = [0.5, 1.5, -0.5, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e308, -1e308, 5e-324];
      if (min !== undefined) edges.push(min - 1, min - 0.5);
      if (max !== undefined) edges.push(max + 1, max + 0.5, max * 10);
      faults.push(fc.constantFrom(...edges));
    }
    if (list.includes('string')) {
      const max = schema.maxLength as number | undefined;
      if (max !== undefined)
        faults.push(fc.constantFrom('x'.repeat(max + 1), '😀'.repeat(Math.ceil((max + 1) / 2))));
      if (schema.minLength !== undefined) faults.push(fc.constant(''));
      if (typeof schema.pattern === 'string')
        faults.push(fc.constantFrom('has space', 'é', 'a/b', 'a'.repeat(129)));
    }
    if (Array.isArray(schema.enum))
      faults.push(fc.constantFrom('nope', 'WAITING', ' waiting', 'waiting\u0000'));
    if (list.includes('array')) {
      const max = schema.maxItems as number | undefined;
      if (max !== undefined) faults.push(fc.constant(Array.from({ length: max + 1 }, () => ({}))));
      faults.push(fc.constant([]));
    }
    if (list.includes('object') && depth < 4) {
      // Missing a required property, or an unknown one.
      const required = (schema.required as string[] | undefined) ?? [];
      if (required.length > 0) faults.push(objectOf(schema, depth, false).map((v) => dropKey(v, required)));
      faults.push(objectOf(schema, depth, false).map((v) => withKey(v, 'unexpected', 1)));
      faults.push(objectOf(schema, depth, false).map((v) => withKey(v, '__proto__', { polluted: true })));
    }
    return fc.oneof(...faults);
  }

  function shaped(raw: Schema, depth = 0): fc.Arbitrary<unknown> {
    const schema = resolve(raw);
    if (types(schema).includes('object') && schema.properties && !schema.anyOf) {
      return fc.oneof(
        { arbitrary: objectOf(schema, depth, true), weight: 4 },
        { arbitrary: wrong(schema, depth), weight: 1 },
      );
    }
    return fc.oneof(
      { arbitrary: valid(schema, depth), weight: 3 },
      { arbitrary: wrong(schema, depth), weight: 1 },
    );
  }

  return { valid: (s) => valid(s), shaped: (s) => shaped(s), wrong: (s) => wrong(s) };
}

function dropKey(value: unknown, keys: readonly string[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  delete out[keys[0] as string];
  return out;
}

function withKey(value: unknown, key: string, inner: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  setOwn(out, key, inner);
  return out;
}
