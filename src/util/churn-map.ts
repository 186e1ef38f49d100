/**
 * A Map for tables with churn (one key in, another out, all day long): while
 * it holds at most 4,096 entries, it replaces itself with a copy after every
 * `size + 256` deletes.
 *
 * Why: a long-lived Map with churn rehashes every few dozen inserts, and V8
 * links each rehashed-away table to its successor (for live iterators). Once
 * a full GC has moved the current table to the old generation, that dead old
 * table keeps its successor alive through every scavenge, which keeps the next
 * one alive, and so on: every value that passed through the Map is promoted
 * and dies in the old generation. On the queue cycle that was 400-800 KB
 * promoted per scavenge. A Map that is dropped rather than rehashed has no
 * successor, so the copy ends such a chain; it copies at most one entry per
 * delete (docs/ARCHITECTURE.md, "The job table").
 *
 * Only small tables are copied. A copy is one pause, and it grows with the
 * table: 33 ms for 100,000 entries and 532 ms for 1,000,000 on this machine.
 * The values of a large table live long anyway (a job waits behind thousands
 * of others), so they are promoted whatever the table does, and the chain
 * costs little. At 4,096 entries a copy takes 0.4-0.6 ms (3.2 ms at worst in 20).
 *
 * Iteration follows insertion order, as a Map's; do not delete while iterating.
 */
const COPY_SLACK = 256;
/** Larger tables are not copied (see above). */
const COPY_MAX_SIZE = 4096;

export class ChurnMap<K, V> implements Iterable<[K, V]> {
  private map = new Map<K, V>();
  private deletes = 0;
  private copiesValue = 0;

  /** How many times the table was replaced by a copy (tests). */
  get copies(): number {
    return this.copiesValue;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): this {
    this.map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    if (!this.map.delete(key)) return false;
    if (++this.deletes >= this.map.size + COPY_SLACK) {
      this.deletes = 0;
      if (this.map.size <= COPY_MAX_SIZE) {
        this.map = new Map(this.map);
        this.copiesValue++;
      }
    }
    return true;
  }

  clear(): void {
    this.map = new Map();
    this.deletes = 0;
  }

  keys(): IterableIterator<K> {
    return this.map.keys();
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}
