/**
 * The public API of the AOF layer: what `replication`, `node` and the CLI
 * import. Internals (the writer's loop, the loader's scanner) stay behind it.
 */
export { type CheckIo, runCheckAof } from './check.js';
export { type AofConfig, type AppendFsync, DEFAULT_AOF_CONFIG } from './config.js';
export { AofEngine, type AofEngineOptions, type LoadProgress } from './engine.js';
export {
  type BatchAnnotation,
  baseFileName,
  crc32c,
  type FileHeader,
  type FileKind,
  FORMAT_VERSION,
  incrFileName,
  manifestFileName,
} from './format.js';
export { type AofFile, type FsLayer, type OpenMode, realFs } from './fs.js';
export { formatInfoSection, type InfoFields, type PersistenceState, persistenceInfo } from './info.js';
export {
  aofDirPath,
  type FileToLoad,
  type LoadedFile,
  type LoadResult,
  type LoadSink,
  loadAof,
  loadAofFiles,
} from './loader.js';
export {
  type AofFileType,
  type Manifest,
  type ManifestEntry,
  parseManifest,
  persistManifest,
  readManifest,
  serializeManifest,
} from './manifest.js';
export {
  autoRewriteDue,
  BaseFileWriter,
  type BaseFormat,
  openSnapshotChunk,
  parseSnapshotBegin,
  REWRITE_MESSAGES,
  type RewriteJob,
  type RewriteOutput,
  type RewriteStart,
  type RewriteStatus,
  rewriteBackoffMs,
  SNAPSHOT_BEGIN,
  SNAPSHOT_CHUNK,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_FORMAT_VERSION,
  type Snapshotter,
  snapshotBeginRecord,
  snapshotChunkRecord,
  TEMP_REWRITE_PREFIX,
} from './rewrite.js';
export { DEFAULT_WRITER_TIMING, type WriterTiming } from './writer.js';
