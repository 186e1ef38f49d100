// The job sets' B+tree (src/queue/job-set.ts) against a sorted array: random
// adds, deletes, lookups, minimums and iterations from a start key, with small
// nodes so that trees grow deep and split, merge and shrink often. After every
// step the tree's structural invariants hold (verify) and what it holds equals
// the model, in order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareJobs, type SetKey } from '../../src/queue/job.js';
import { JobSet } from '../../src/queue/job-set.js';

type Op =
  | { kind: 'add'; sortKey: number; order: number }
  | { kind: 'delete'; sortKey: number; order: number }
  | { kind: 'deleteMin' }
  | { kind: 'deleteMax' }
  | { kind: 'pushBack'; count: number }
  | { kind: 'popFront'; count: number }
  | { kind: 'keysFrom'; sortKey: number; order: number }
  | { kind: 'clear' };

const key = (sortKey: number, order: number): SetKey => ({ sortKey, order });
// Few distinct values, so that equal keys (duplicates) and hits are common.
const small = fc.integer({ min: 0, max: 12 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('add' as const), sortKey: small, order: small }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), sortKey: small, order: small }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'deleteMin' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'deleteMax' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('pushBack' as const), count: fc.integer({ min: 1, max: 60 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('popFront' as const), count: fc.integer({ min: 1, max: 60 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('keysFrom' as const), sortKey: small, order: small }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
);

const flat = (keys: Iterable<SetKey>): string[] => [...keys].map((k) => `${k.sortKey}/${k.order}`);

function run(nodeSize: number, ops: readonly Op[]): void {
  const set = new JobSet(nodeSize);
  let model: SetKey[] = [];
  let back = 100; // pushBack keys sort after every small key: FIFO traffic, as in a waiting set
  const modelHas = (k: SetKey) => model.some((m) => compareJobs(m, k) === 0);
  const removeFromModel = (k: SetKey) => {
    model = model.filter((m) => compareJobs(m, k) !== 0);
  };
  for (const op of ops) {
    switch (op.kind) {
      case 'add': {
        const k = key(op.sortKey, op.order);
        const fresh = !modelHas(k);
        expect(set.add(k)).toBe(fresh);
        if (fresh) model = [...model, k].sort(compareJobs);
        break;
      }
      case 'delete': {
        const k = key(op.sortKey, op.order);
        const present = modelHas(k);
        expect(set.has(k)).toBe(present);
        expect(set.delete(k)).toBe(present);
        removeFromModel(k);
        break;
      }
      case 'deleteMin':
      case 'deleteMax': {
        const k = op.kind === 'deleteMin' ? model[0] : model[model.length - 1];
        if (k === undefined) {
          expect(set.minKey()).toBeUndefined();
          break;
        }
        expect(set.delete(key(k.sortKey, k.order))).toBe(true);
        removeFromModel(k);
        break;
      }
      case 'pushBack':
        for (let i = 0; i < op.count; i++) {
          const k = key(back, back++);
          expect(set.add(k)).toBe(true);
          model.push(k);
        }
        break;
      case 'popFront':
        for (let i = 0; i < op.count && model.length > 0; i++) {
          const first = set.minKey();
          expect(first).toBe(model[0]);
          expect(set.delete(first as SetKey)).toBe(true);
          model.shift();
        }
        break;
      case 'keysFrom': {
        const start = key(op.sortKey, op.order);
        expect(flat(set.keys(start))).toEqual(flat(model.filter((m) => compareJobs(m, start) >= 0)));
        break;
      }
      case 'clear':
        set.clear();
        model = [];
        break;
    }
    set.verify();
    expect(set.size).toBe(model.length);
    expect(set.minKey()).toBe(model[0]);
  }
  expect(flat(set.keys())).toEqual(flat(model));
}

describe('JobSet (B+tree of job keys) against a sorted array', () => {
  for (const nodeSize of [4, 5, 8, 64]) {
    it(`agrees with the model after every step, nodes of ${nodeSize} keys`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 150 }), (ops) => run(nodeSize, ops)),
        { numRuns: nodeSize === 64 ? 100 : 300 },
      );
    });
  }

  it('grows to several levels and shrinks back to an empty leaf, FIFO and LIFO', () => {
    const set = new JobSet(4);
    const keys = Array.from({ length: 2000 }, (_, i) => key(0, i));
    for (const k of keys) expect(set.add(k)).toBe(true);
    set.verify();
    expect(set.size).toBe(2000);
    expect(set.add(key(0, 1999))).toBe(false);
    // Take half from the front (a waiting set leased), half from the back.
    for (let i = 0; i < 1000; i++) expect(set.delete(set.minKey() as SetKey)).toBe(true);
    set.verify();
    expect(set.minKey()).toBe(keys[1000]);
    for (let i = 1999; i >= 1000; i--) expect(set.delete(key(0, i))).toBe(true);
    set.verify();
    expect(set.size).toBe(0);
    expect(set.minKey()).toBeUndefined();
    expect([...set.keys()]).toEqual([]);
  });

  it('iterates from a start key between two keys, past every key, and before all of them', () => {
    const set = new JobSet(4);
    for (let i = 0; i < 100; i++) set.add(key(i * 10, 0));
    expect(flat(set.keys(key(455, 0))).slice(0, 2)).toEqual(['460/0', '470/0']);
    expect([...set.keys(key(991, 0))]).toEqual([]);
    expect([...set.keys(key(-1, 0))]).toHaveLength(100);
  });
});
