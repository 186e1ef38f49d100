/**
 * A Map for tables with churn (one key in, another out, all day long): it
 * replaces itself with a copy after every `size + 256` deletes.
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
 * Iteration follows insertion order, as a Map's; do not delete while iterating.
 */
const COPY_SLACK = 256;

export class ChurnMap<K, V> implements Iterable<[K, V]> {
  private map = new Map<K, V>();
  private deletes = 0;

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
      this.map = new Map(this.map);
      this.deletes = 0;
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
