/** The key-value store's public surface: the Store state machine and its command table. */
export {
  COMMANDS,
  type CommandFlag,
  type CommandSpec,
  commandSpec,
  isWriteCommand,
  RECORD_NAMES,
} from './commands.js';
export { globMatch } from './glob.js';
export { INLINE_STRING_MAX_BYTES } from './keyspace.js';
export { type ExecResult, type KeyspaceInfo, SNAPSHOT_HSET_PAIRS, Store } from './store.js';
