/**
 * One queue's job table: job id → Job, a Map that is replaced by a copy of
 * itself after every `size + 256` deletes.
 *
 * Why the copy: every add → lease → ack cycle inserts one id and deletes
 * another, so the Map rehashes every few dozen cycles. V8 links each
 * rehashed-away table to its successor (for live iterators). Once a full GC
 * has moved the current table to the old generation, that dead old table
 * keeps its successor alive through every scavenge, which keeps the next one
 * alive, and so on: every job that passed through the table is promoted and
 * dies in the old generation. On the queue cycle that was 400-800 KB promoted
 * per scavenge, from the first full GC on. A Map that is dropped, not
 * rehashed, has no successor, so the copy ends such a chain; copying at most
 * one entry per delete keeps the cost amortized O(1) (docs/ARCHITECTURE.md,
 * "The job table"). A dictionary object has no such chain, but its deletes
 * cost 580 ns more per cycle than the Map's.
 */
import type { Job } from './job.js';

/** Deletes beyond the table's size that trigger the copy. */
const COPY_SLACK = 256;

export class JobTable {
  private map = new Map<string, Job>();
  private deletes = 0;

  get size(): number {
    return this.map.size;
  }

  get(id: string): Job | undefined {
    return this.map.get(id);
  }

  has(id: string): boolean {
    return this.map.has(id);
  }

  /** Adds the job under its id; false (and no change) when the id is taken. */
  add(job: Job): boolean {
    if (this.map.has(job.id)) return false;
    this.map.set(job.id, job);
    return true;
  }

  /** Removes the job with this id; false if there is none. */
  delete(id: string): boolean {
    if (!this.map.delete(id)) return false;
    if (++this.deletes >= this.map.size + COPY_SLACK) {
      this.map = new Map(this.map);
      this.deletes = 0;
    }
    return true;
  }
}
