/**
 * One queue's job table: job id → Job. A dictionary object, not a Map.
 *
 * Why not a Map: every add → lease → ack cycle inserts one id and deletes
 * another, so a long-lived Map rehashes every few dozen cycles. V8 links each
 * rehashed-away table to its successor (for live iterators), and once a full
 * GC has moved the current table to the old generation, that dead old table
 * keeps its successor alive through every scavenge, which keeps the next one
 * alive, and so on: every job that passed through the table is promoted and
 * dies in the old generation. Measured on the queue cycle: 400-800 KB promoted
 * per scavenge with a Map, from the first full GC on, against 7 KB with this
 * table (docs/ARCHITECTURE.md, "The job table"). A dictionary object has no
 * such link: a table it outgrows is garbage at once.
 *
 * The object has no prototype, so any id (`__proto__`, `constructor`) is an
 * ordinary key. Not iterable: the state sets give the order of jobs.
 */
import type { Job } from './job.js';

export class JobTable {
  private entries: Record<string, Job> = Object.create(null) as Record<string, Job>;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: string): Job | undefined {
    return this.entries[id];
  }

  has(id: string): boolean {
    return this.entries[id] !== undefined;
  }

  /** Adds the job under its id; false (and no change) when the id is taken. */
  add(job: Job): boolean {
    const id = job.id;
    if (this.entries[id] !== undefined) return false;
    this.entries[id] = job;
    this.count++;
    return true;
  }

  /** Removes the job with this id; false if there is none. */
  delete(id: string): boolean {
    if (this.entries[id] === undefined) return false;
    delete this.entries[id];
    this.count--;
    return true;
  }
}
