/**
 * The AOF engine's configuration: Redis's directive names, Redis's defaults.
 * The server layer fills it from the config file, environment and flags.
 */
export type AppendFsync = 'always' | 'everysec' | 'no';

export interface AofConfig {
  /** Working directory (Redis `dir`). */
  dir: string;
  /** `appendonly`: aofq always persists; `false` is accepted only for tests of the in-memory path. */
  appendonly: boolean;
  /** `appendfilename`: a plain file name, never a path. */
  appendfilename: string;
  /** `appenddirname`: a plain directory name under `dir`, never a path. */
  appenddirname: string;
  appendfsync: AppendFsync;
  /** `aof-load-truncated`: a torn tail in the last file is cut off (yes) or stops the start (no). */
  aofLoadTruncated: boolean;
  /** `aof-timestamp-enabled`: write Redis's `#TS:<unix-seconds>` lines, at most one a second. */
  aofTimestampEnabled: boolean;
  /** `aof-use-rdb-preamble`: the base is a compact snapshot (yes) or plain commands (no). Rewrite issue. */
  aofUseRdbPreamble: boolean;
  autoAofRewritePercentage: number;
  autoAofRewriteMinSize: number;
  aofRewriteIncrementalFsync: boolean;
  aofDisableAutoGc: boolean;
}

export const DEFAULT_AOF_CONFIG: AofConfig = Object.freeze({
  dir: './data',
  appendonly: true,
  appendfilename: 'appendonly.aof',
  appenddirname: 'appendonlydir',
  appendfsync: 'everysec',
  aofLoadTruncated: true,
  aofTimestampEnabled: false,
  aofUseRdbPreamble: true,
  autoAofRewritePercentage: 100,
  autoAofRewriteMinSize: 64 * 1024 * 1024,
  aofRewriteIncrementalFsync: true,
  aofDisableAutoGc: false,
});
