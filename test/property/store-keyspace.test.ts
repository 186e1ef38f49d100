/**
 * The keyspace's arena and hash index against a plain Map model: random
 * sequences of sets (short, long, from bytes, hashes), deletes, TTL changes and
 * clears, with a tiny arena chunk so that compaction runs all the time. After
 * every step the keyspace's own invariants hold (index, slot back-references,
 * live-byte counts, every chunk but the current one at least half live), and
 * values, TTLs and the key set equal the model's. Then the snapshot encoding
 * (format 2, and format 1 as written before) loads back to the same state.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isHash, Keyspace, type Value } from '../../src/store/keyspace.js';
import { encodeStoreChunks, encodeStoreChunksFormat1, loadStoreChunk } from '../../src/store/snapshot.js';

type ModelValue = { kind: 'string'; bytes: string } | { kind: 'hash'; fields: Map<string, string> };

const latin1Text = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b).toString('latin1'));

const keyArb = fc.oneof(
  fc.constantFrom('a', 'b', 'c', 'key:1', 'key:2', '', '\u00ff\u0000'),
  latin1Text(0, 12),
);
// Short values, values at and past the inline size (4096), long enough to need a chunk of their own.
const valueArb = fc.oneof(
  { weight: 6, arbitrary: latin1Text(0, 40) },
  { weight: 1, arbitrary: fc.integer({ min: 4090, max: 4100 }).map((n) => 'v'.repeat(n)) },
);

const opArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, value: valueArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('setBytes' as const), key: keyArb, value: valueArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('setBuffer' as const), key: keyArb, value: valueArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('hash' as const),
      key: keyArb,
      fields: fc.array(fc.tuple(latin1Text(0, 6), latin1Text(0, 20)), { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('expire' as const),
      key: keyArb,
      at: fc.integer({ min: -5, max: 2 ** 40 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('persist' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
);

function asModel(value: Value): ModelValue {
  if (isHash(value)) {
    const fields = new Map<string, string>();
    for (const [f, v] of value) fields.set(f, typeof v === 'string' ? v : v.toString('latin1'));
    return { kind: 'hash', fields };
  }
  return { kind: 'string', bytes: typeof value === 'string' ? value : value.toString('latin1') };
}

function expectSame(ks: Keyspace, model: Map<string, ModelValue>, ttl: Map<string, number>): void {
  ks.checkInvariants();
  expect(ks.size).toBe(model.size);
  expect(ks.expiresCount).toBe(ttl.size);
  expect(new Set(ks.keys())).toEqual(new Set(model.keys()));
  for (const [key, value] of model) {
    const got = ks.get(key);
    expect(got).toBeDefined();
    expect(asModel(got as Value)).toEqual(value);
    // Values beyond the inline size come back as Buffers, shorter ones as strings.
    if (value.kind === 'string') expect(typeof got === 'string').toBe(value.bytes.length <= 4096);
    expect(ks.getExpire(key)).toBe(ttl.get(key));
  }
}

interface Op {
  op: string;
  key?: string;
  value?: string;
  fields?: [string, string][];
  at?: number;
}

function run(
  ks: Keyspace,
  ops: readonly Op[],
  model: Map<string, ModelValue>,
  ttl: Map<string, number>,
): void {
  for (const o of ops) {
    const key = o.key as string;
    switch (o.op) {
      case 'set':
        ks.set(
          key,
          (o.value as string).length > 4096 ? Buffer.from(o.value as string, 'latin1') : (o.value as string),
        );
        model.set(key, { kind: 'string', bytes: o.value as string });
        break;
      case 'setBytes': {
        // A reused buffer: the keyspace must copy it.
        const scratch = Buffer.from(o.value as string, 'latin1');
        ks.setBytes(key, scratch);
        scratch.fill(0x2a);
        model.set(key, { kind: 'string', bytes: o.value as string });
        break;
      }
      case 'setBuffer':
        ks.set(key, Buffer.from(o.value as string, 'latin1'));
        model.set(key, { kind: 'string', bytes: o.value as string });
        break;
      case 'hash': {
        const fields = new Map(o.fields as [string, string][]);
        ks.set(key, new Map(fields));
        model.set(key, { kind: 'hash', fields });
        break;
      }
      case 'delete':
        expect(ks.delete(key)).toBe(model.delete(key));
        ttl.delete(key);
        break;
      case 'expire':
        if (model.has(key)) {
          ks.setExpire(key, o.at as number);
          ttl.set(key, o.at as number);
        }
        break;
      case 'persist':
        expect(ks.removeExpire(key)).toBe(ttl.delete(key));
        break;
      case 'clear':
        ks.clear();
        model.clear();
        ttl.clear();
        break;
    }
    expectSame(ks, model, ttl);
  }
}

describe('keyspace arena and index', () => {
  it('agrees with a Map model through sets, deletes, TTLs, clears and compactions', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 64, max: 600 }),
        (ops, chunk) => {
          const ks = new Keyspace({ arenaChunkBytes: chunk });
          run(ks, ops, new Map(), new Map());
        },
      ),
      { numRuns: 150 },
    );
  });

  it('snapshot chunks, in format 2 and in format 1, load back to the same keys, values and TTLs', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 64, max: 2000 }),
        fc.boolean(),
        (ops, maxBytes, oldFormat) => {
          const source = new Keyspace({ arenaChunkBytes: 256 });
          const model = new Map<string, ModelValue>();
          const ttl = new Map<string, number>();
          run(source, ops, model, ttl);
          // Keys expired at the snapshot's time are left out.
          const nowMs = 1000;
          for (const [key, at] of ttl) {
            if (at <= nowMs) {
              model.delete(key);
              ttl.delete(key);
            }
          }
          const encode = oldFormat ? encodeStoreChunksFormat1 : encodeStoreChunks;
          const loaded = new Keyspace({ arenaChunkBytes: 128 });
          for (const chunk of encode(source, nowMs, maxBytes)) {
            // The loader must not keep the caller's buffer: scribble over it afterwards.
            const copy = Buffer.from(chunk);
            loadStoreChunk(loaded, copy);
            copy.fill(0x5a);
          }
          expectSame(loaded, model, ttl);
          // And the loaded keyspace goes on working: overwrite everything once.
          for (const key of model.keys()) loaded.set(key, 'x');
          loaded.checkInvariants();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('keeps the arena within twice the live bytes plus a chunk under endless overwrites', () => {
    const chunk = 4096;
    const ks = new Keyspace({ arenaChunkBytes: chunk });
    for (let i = 0; i < 200_000; i++) {
      ks.set(`k${i % 500}`, 'v'.repeat(i % 97));
      if (i % 7 === 0) ks.delete(`k${(i * 13) % 500}`);
    }
    ks.checkInvariants();
    const stats = ks.arenaStats();
    expect(stats.liveBytes).toBeGreaterThan(0);
    expect(stats.bytes).toBeLessThanOrEqual(2 * stats.liveBytes + chunk);
  });

  it('refuses a damaged format-2 chunk with a coded error, at every cut and on a bad tag', () => {
    const source = new Keyspace();
    source.set('alpha', 'one');
    source.set('beta', new Map([['f', 'v']]));
    source.set('gamma', 'three');
    source.setExpire('gamma', 5000);
    const [chunk] = [...encodeStoreChunks(source, 0, 1 << 16)];
    expect(chunk).toBeDefined();
    const full = chunk as Buffer;
    // A cut at an entry boundary is a shorter valid chunk (after 'alpha', after 'beta'); every other cut is refused.
    let loaded = 0;
    for (let cut = 9; cut < full.length; cut++) {
      const ks = new Keyspace();
      try {
        loadStoreChunk(ks, full.subarray(0, cut));
        loaded++;
        expect(ks.get('gamma')).toBeUndefined();
        ks.checkInvariants();
      } catch (err) {
        expect(err).toMatchObject({ code: 'AOFQ_ERR_STORE_BAD_RECORD' });
      }
    }
    expect(loaded).toBe(2);
    const badTag = Buffer.from(full);
    badTag.writeUInt32LE(7, 8);
    expect(() => loadStoreChunk(new Keyspace(), badTag)).toThrow(
      expect.objectContaining({ code: 'AOFQ_ERR_STORE_BAD_RECORD' }),
    );
    // The whole chunk loads.
    const ks = new Keyspace();
    loadStoreChunk(ks, full);
    expect(ks.get('alpha')).toBe('one');
    expect(ks.getExpire('gamma')).toBe(5000);
    ks.checkInvariants();
  });
});
