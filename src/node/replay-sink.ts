/**
 * The one way records reach the state machines from disk: at start (the
 * node's load) and in the rewrite helper (its replay of the log up to the
 * rotation). It routes each record to the store or the queues, accepts the
 * `SELECT 0` of files written by redis-server, and applies the compact
 * snapshot records of a base (`AOFQ.SNAPSHOT-BEGIN`, `AOFQ.SNAPSHOT`).
 */
import { openSnapshotChunk, parseSnapshotBegin, SNAPSHOT_BEGIN, SNAPSHOT_CHUNK } from '../aof/rewrite.js';
import { AofqError } from '../errors/index.js';
import type { Queues } from '../queue/index.js';
import type { Store } from '../store/index.js';

/** Snapshot sections: the name in `AOFQ.SNAPSHOT <section>` of each state machine. */
export const SNAPSHOT_SECTIONS = Object.freeze({ store: 'store', queues: 'queues' });

export interface ReplaySink {
  record(argv: Buffer[]): void;
}

export function replaySink(store: Store, queues: Queues): ReplaySink {
  return {
    record(argv: Buffer[]): void {
      const first = argv[0];
      if (first === undefined) throw new AofqError('AOFQ_ERR_AOF_CORRUPT', { reason: 'empty record' });
      const name = first.length <= 32 ? first.toString('latin1').toUpperCase() : '';
      if (name === 'SELECT') {
        // Files written by redis-server select database 0; only 0 exists here.
        if (argv.length !== 2 || argv[1]?.toString('latin1') !== '0')
          throw new AofqError('AOFQ_ERR_CMD_DB_INDEX');
        return;
      }
      if (name === SNAPSHOT_CHUNK) {
        const { section, payload } = openSnapshotChunk(argv);
        if (section === SNAPSHOT_SECTIONS.store) store.loadSnapshotChunk(payload);
        else if (section === SNAPSHOT_SECTIONS.queues) queues.loadSnapshotChunk(payload);
        else throw new AofqError('AOFQ_ERR_AOF_SNAPSHOT', { reason: `unknown section '${section}'` });
        return;
      }
      if (name === SNAPSHOT_BEGIN) {
        parseSnapshotBegin(argv);
        return;
      }
      if (queues.owns(name)) queues.replay(argv);
      else store.replay(argv);
    },
  };
}
