/**
 * One queue's job table: job id → Job. A ChurnMap (util/churn-map.ts): every
 * add → lease → ack cycle inserts one id and deletes another, and a plain Map
 * with that churn made every job survive into the old generation once a full
 * GC had run (docs/ARCHITECTURE.md, "The job table"). A dictionary object has
 * no such problem either, but its deletes cost 580 ns more per cycle than a
 * Map's, more than the GC they saved.
 */
import { assert } from '../util/assert.js';
import { ChurnMap } from '../util/churn-map.js';
import type { Job } from './job.js';

export class JobTable extends ChurnMap<string, Job> {
  /** Adds the job under its id; false (and no change) when the id is taken. */
  add(job: Job): boolean {
    if (this.has(job.id)) return false;
    this.set(job.id, job);
    return true;
  }

  /**
   * Adds a job whose id the caller has already found free (one hash lookup, not two: the hot
   * path of every enqueue). A taken id is a bug, and the assertion stops the process.
   */
  insert(job: Job): void {
    const before = this.size;
    this.set(job.id, job);
    assert(this.size === before + 1, 'job ids are unique within a queue');
  }
}
