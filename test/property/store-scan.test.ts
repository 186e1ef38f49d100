/**
 * Property: a full SCAN returns every key that exists for the whole scan, under
 * any interleaving of inserts and deletes between calls (freed slots are reused
 * and trailing ones trimmed, which is where a cursor could go wrong).
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { Store } from '../../src/store/index.js';

const ctx = { nowMs: 1_700_000_000_000 };

function run(store: Store, ...args: string[]): unknown {
  return store.execute(
    args.map((arg) => Buffer.from(arg, 'latin1')),
    ctx,
  ).reply;
}

test('SCAN returns every key present throughout, whatever changes between calls', () => {
  const keyIndex = fc.integer({ min: 0, max: 79 });
  const change = fc.record({ del: fc.boolean(), key: keyIndex });
  fc.assert(
    fc.property(
      fc.array(keyIndex, { maxLength: 80 }),
      fc.array(fc.array(change, { maxLength: 6 }), { maxLength: 40 }),
      fc.integer({ min: 1, max: 5 }),
      (initial, changesPerCall, count) => {
        const store = new Store();
        for (const index of initial) run(store, 'SET', `k${index}`, 'v');
        const present = new Set(initial.map((index) => `k${index}`));
        const throughout = new Set(present);
        const seen = new Set<string>();
        let cursor = '0';
        for (let call = 0; call < 10_000; call++) {
          const [next, keys] = run(store, 'SCAN', cursor, 'COUNT', String(count)) as [Buffer, Buffer[]];
          for (const key of keys) {
            const text = key.toString('latin1');
            // Never a key that does not exist now.
            expect(present.has(text)).toBe(true);
            seen.add(text);
          }
          cursor = next.toString();
          if (cursor === '0') break;
          for (const { del, key } of changesPerCall[call % Math.max(1, changesPerCall.length)] ?? []) {
            const name = `k${key}`;
            if (del) {
              run(store, 'DEL', name);
              present.delete(name);
              throughout.delete(name);
            } else {
              run(store, 'SET', name, 'v');
              present.add(name);
            }
          }
        }
        expect(cursor).toBe('0');
        for (const key of throughout) expect(seen.has(key)).toBe(true);
      },
    ),
    { numRuns: 300 },
  );
});
