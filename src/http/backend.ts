/**
 * What the HTTP layer needs from the node, as a narrow interface: the queue
 * operations, the long-poll lease, the queue names, INFO and the run-time
 * settings. `src/cli/server.ts` adapts an AofqNode to it; tests may give a fake.
 */
import type { QueueRequest, QueueResult } from '../queue/types.js';

export type LeaseRequest = Extract<QueueRequest, { op: 'lease' }>;

export type InfoFields = Record<string, string | number>;

export interface QueueBackend {
  queue<R extends QueueRequest>(request: R): Promise<QueueResult<R>>;
  leaseWait(request: LeaseRequest, waitMs: number, signal?: AbortSignal): Promise<QueueResult<LeaseRequest>>;
  /** Names of the queues that exist, sorted. */
  listQueues(): string[];
  /** INFO sections by lower-case name (`server`, `persistence`, ...). */
  info(): Record<string, InfoFields>;
  /** BGREWRITEAOF: start an AOF rewrite; throws AofqError (REWRITE_IN_PROGRESS, NO_SPACE, ...). */
  rewrite(): Promise<{ status: 'started' | 'scheduled'; message: string }>;
  /** False while the AOF refuses writes (a disk error). */
  readonly writable: boolean;
  close(): Promise<void>;
}

/** The server's directives as text, and the ones that may change at run time. */
export interface RuntimeConfig {
  /** Effective directives, secrets redacted. */
  get(): Record<string, string>;
  /** Change one run-time directive; throws AofqError (CONFIG_READONLY / CONFIG_INVALID). */
  set(name: string, value: string): void;
}
