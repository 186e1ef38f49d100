/**
 * The contract between the state machines (`store`, `queue`) and the layer
 * that wires them to the log (`node`). It lives here, at the bottom, because
 * store and queue sit beside the AOF engine and never import each other.
 *
 * The rule it encodes: every state change is one deterministic record.
 *  1. The leader validates a request and *decides* everything that is not in
 *     it (time, ids, tokens), using an ApplyContext.
 *  2. It turns the request into records (arrays of byte strings, logged as
 *     RESP arrays) that carry those decisions as absolute values.
 *  3. It applies the records. Replay on restart and on a follower applies the
 *     same records through `replay`, the same code, and never reads a clock.
 */
import type { Hash } from 'node:crypto';

/** What the leader decided for one command. */
export interface ApplyContext {
  /** Milliseconds since the Unix epoch, read once by the leader. */
  readonly nowMs: number;
}

/** One logged record: a command name and its arguments, as bytes. */
export type Record = readonly Buffer[];

/**
 * An argument of a record as the leader builds it, before it is encoded into
 * the AOF: bytes, a string (written as UTF-8) or a number (written as its
 * decimal text, `String(n)`), which spares a Buffer per argument and a
 * number-to-text conversion on the hot path. Replay always sees bytes.
 */
export type RecordArg = Buffer | string | number;

/** A record as the leader builds it; replay always sees `Record` (bytes). */
export type LeaderRecord = ReadonlyArray<RecordArg>;

export interface StateMachine {
  /** Does this machine own records whose command name (upper case) is `name`? */
  owns(name: string): boolean;
  /** Apply one logged record. Deterministic: it reads only `record`. Throws AofqError on a malformed record. */
  replay(record: Record): void;
  /** Feed the whole state into a hash, in a canonical order, for digests. */
  digest(hash: Hash): void;
}

/**
 * What a state machine gives the AOF rewrite: its whole state as records
 * (the command-form base) or as compact chunks in its own binary format (the
 * snapshot base), and the loading of such a chunk straight into its state,
 * with no command parsing. The node layer frames and checksums the chunks.
 */
export interface Snapshottable {
  /** Records that rebuild the state; entries expired at `nowMs` are left out. */
  snapshotRecords(nowMs: number): Iterable<LeaderRecord>;
  /** The state as chunks of about `maxBytes` each (one larger entry gets a chunk of its own). */
  snapshotChunks(nowMs: number, maxBytes: number): Iterable<Buffer>;
  /** Apply one chunk made by `snapshotChunks`. Throws AofqError on bytes that do not parse. */
  loadSnapshotChunk(chunk: Buffer): void;
}
