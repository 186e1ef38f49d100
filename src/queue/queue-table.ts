/**
 * The queues by name: a Map that remembers its last hit. Every queue command looks its queue up
 * several times (the decision, the apply of its record, the node's durability check: nine
 * lookups an add -> lease -> ack cycle), nearly always for the queue of the command before it. A
 * hit costs one string comparison (a pointer comparison when the name is the same string, as it
 * is for the lookups of one command), not a hash and a probe. The cache is dropped by every
 * set and delete, so it never returns a queue that the table no longer holds.
 */
import type { QueueState } from './queue-state.js';

export class QueueTable {
  private readonly map = new Map<string, QueueState>();
  private lastName: string | null = null;
  private lastQueue: QueueState | undefined = undefined;

  get size(): number {
    return this.map.size;
  }

  get(name: string): QueueState | undefined {
    if (name === this.lastName) return this.lastQueue;
    const queue = this.map.get(name);
    if (queue !== undefined) {
      this.lastName = name;
      this.lastQueue = queue;
    }
    return queue;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  set(name: string, queue: QueueState): void {
    this.forget();
    this.map.set(name, queue);
  }

  delete(name: string): boolean {
    this.forget();
    return this.map.delete(name);
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  values(): IterableIterator<QueueState> {
    return this.map.values();
  }

  private forget(): void {
    this.lastName = null;
    this.lastQueue = undefined;
  }
}
