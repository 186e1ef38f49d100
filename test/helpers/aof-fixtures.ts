/**
 * Builders for hand-made AOF directories, shared by the loader, check-tool,
 * engine and fault tests: files with an aofq header and batches built from
 * given records (or plain Redis-style RESP), manifests, and damage (flip a
 * byte, truncate, append garbage). Everything is real files in a temp dir.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofEngine, type AofEngineOptions } from '../../src/aof/engine.js';
import {
  crc32c,
  encodeBatchAnnotation,
  encodeFileHeader,
  encodeTimestamp,
  type FileKind,
  manifestFileName,
} from '../../src/aof/format.js';
import type { LoadSink } from '../../src/aof/loader.js';
import { type Arg, RespWriter } from '../../src/resp/encode.js';
import { silentLogger } from '../../src/util/logger.js';

export const APPENDFILENAME = 'appendonly.aof';
export const APPENDDIRNAME = 'appendonlydir';
/** A fixed batch time: 2023-11-14T22:13:20Z. */
export const FIXED_MS = 1_700_000_000_000;

export async function makeTempDir(prefix = 'aofq-test-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

/** An AofConfig rooted at `dir`, Redis's names, with overrides. */
export function testConfig(dir: string, overrides: Partial<AofConfig> = {}): AofConfig {
  return {
    ...DEFAULT_AOF_CONFIG,
    dir,
    appendfilename: APPENDFILENAME,
    appenddirname: APPENDDIRNAME,
    ...overrides,
  };
}

export function aofDir(root: string, cfg?: AofConfig): string {
  return path.join(root, cfg?.appenddirname ?? APPENDDIRNAME);
}

/** Records as RESP, without annotations: what Redis writes. */
export function respRecords(records: readonly (readonly Arg[])[]): Buffer {
  const w = new RespWriter();
  for (const r of records) w.command(r);
  return w.toBuffer();
}

export interface BatchOptions {
  /** LSN written in the annotation. */
  lsn: number;
  /** Unix ms; default FIXED_MS. */
  ms?: number;
  /** Override what the annotation claims, to build bad batches. */
  count?: number;
  bytes?: number;
  crc?: number;
}

/** One batch: annotation line + records. */
export function buildBatch(records: readonly (readonly Arg[])[], opts: BatchOptions): Buffer {
  const body = respRecords(records);
  const annotation = encodeBatchAnnotation({
    lsn: opts.lsn,
    count: opts.count ?? records.length,
    bytes: opts.bytes ?? body.length,
    crc: opts.crc ?? crc32c(body),
    ms: opts.ms ?? FIXED_MS,
  });
  return Buffer.concat([annotation, body]);
}

export interface FileSpec {
  kind: FileKind;
  /** Header LSN: for an incr, the LSN before its first record; for a base, the base's LSN. */
  lsn: number;
  /** Each batch is a list of records, or a list plus options. LSNs are assigned in order. */
  batches: readonly (readonly (readonly Arg[])[] | { records: readonly (readonly Arg[])[]; ms?: number })[];
  /** Write a `#TS:<s>` line before each batch (Redis's annotation). */
  timestamps?: boolean;
}

/** A whole file of ours: header, then batches with consecutive LSNs (a base's batches carry its LSN). */
export function buildAofqFile(spec: FileSpec): Buffer {
  const parts: Buffer[] = [encodeFileHeader({ kind: spec.kind, lsn: spec.lsn })];
  let next = spec.lsn + 1;
  for (const b of spec.batches) {
    const records = Array.isArray(b)
      ? (b as readonly (readonly Arg[])[])
      : (b as { records: Arg[][] }).records;
    const ms = Array.isArray(b) ? FIXED_MS : ((b as { ms?: number }).ms ?? FIXED_MS);
    if (spec.timestamps) parts.push(encodeTimestamp(Math.floor(ms / 1000)));
    parts.push(buildBatch(records, { lsn: spec.kind === 'base' ? spec.lsn : next, ms }));
    if (spec.kind === 'incr') next += records.length;
  }
  return Buffer.concat(parts);
}

export function baseName(seq: number, appendfilename = APPENDFILENAME): string {
  return `${appendfilename}.${seq}.base.aof`;
}

export function incrName(seq: number, appendfilename = APPENDFILENAME): string {
  return `${appendfilename}.${seq}.incr.aof`;
}

export interface DirFile {
  name: string;
  seq: number;
  type: 'b' | 'h' | 'i';
  content: Buffer | string;
  startLsn?: number;
  /** Listed in the manifest but not written: a missing file. */
  missing?: boolean;
}

/** A manifest line as Redis writes it (no quoting: plain names only). */
export function manifestLine(f: { name: string; seq: number; type: string; startLsn?: number }): string {
  const lsn = f.startLsn !== undefined ? ` startlsn ${f.startLsn}` : '';
  return `file ${f.name} seq ${f.seq} type ${f.type}${lsn}\n`;
}

/**
 * Write `<root>/appendonlydir/` with the given files and a manifest listing
 * them in the order given (or `manifestText` verbatim). Returns the dir path.
 */
export async function writeAofDir(
  root: string,
  files: readonly DirFile[],
  options: { manifestText?: string; appendfilename?: string; appenddirname?: string } = {},
): Promise<string> {
  const dir = path.join(root, options.appenddirname ?? APPENDDIRNAME);
  await fsp.mkdir(dir, { recursive: true });
  for (const f of files) {
    if (!f.missing) await fsp.writeFile(path.join(dir, f.name), f.content);
  }
  const text = options.manifestText ?? files.map((f) => manifestLine(f)).join('');
  await writeManifestText(dir, text, options.appendfilename);
  return dir;
}

export async function writeManifestText(
  dir: string,
  text: string,
  appendfilename = APPENDFILENAME,
): Promise<void> {
  await fsp.writeFile(path.join(dir, manifestFileName(appendfilename)), text);
}

export function manifestFilePath(root: string, appendfilename = APPENDFILENAME): string {
  return path.join(root, APPENDDIRNAME, manifestFileName(appendfilename));
}

/** XOR one byte of a file with 0xff (offset < 0 counts from the end). */
export async function flipByte(file: string, offset: number): Promise<void> {
  const buf = await fsp.readFile(file);
  const at = offset < 0 ? buf.length + offset : offset;
  if (at < 0 || at >= buf.length) throw new Error(`flipByte: offset ${offset} outside ${buf.length} bytes`);
  buf[at] = (buf[at] as number) ^ 0xff;
  await fsp.writeFile(file, buf);
}

/** Cut a file to `size` bytes (size < 0: remove that many bytes from the end). */
export async function truncateFile(file: string, size: number): Promise<void> {
  const length = size < 0 ? (await fsp.stat(file)).size + size : size;
  await fsp.truncate(file, length);
}

export async function appendBytes(file: string, bytes: Buffer | string): Promise<void> {
  await fsp.appendFile(file, bytes);
}

export async function fileSize(file: string): Promise<number> {
  return (await fsp.stat(file)).size;
}

export interface CollectedRecord {
  argv: string[];
  lsn: number;
}

/** A LoadSink that keeps every record (argv as UTF-8 strings) and the last progress report. */
export class CollectingSink implements LoadSink {
  readonly records: CollectedRecord[] = [];
  lastProgress: [number, number] | null = null;
  progressCalls = 0;
  record(argv: Buffer[], lsn: number): void {
    this.records.push({ argv: argv.map((a) => a.toString('utf8')), lsn });
  }
  progress(doneBytes: number, totalBytes: number): void {
    this.lastProgress = [doneBytes, totalBytes];
    this.progressCalls++;
  }
  /** argv joined by spaces, for compact assertions. */
  commands(): string[] {
    return this.records.map((r) => r.argv.join(' '));
  }
  lsns(): number[] {
    return this.records.map((r) => r.lsn);
  }
}

/**
 * A temp directory and an engine opener for one test file: every engine it
 * opens is closed, and the directory removed, after each test.
 */
export function engineHarness(prefix: string): {
  readonly root: string;
  open(overrides?: Partial<AofConfig>, opts?: AofEngineOptions, sink?: CollectingSink): Promise<AofEngine>;
  /** Close this engine after the test too. */
  track(engine: AofEngine): AofEngine;
} {
  let root = '';
  let engines: AofEngine[] = [];
  beforeEach(async () => {
    root = await makeTempDir(prefix);
    engines = [];
  });
  afterEach(async () => {
    for (const e of engines) await e.close().catch(() => undefined);
    await removeDir(root);
  });
  return {
    get root() {
      return root;
    },
    track(engine) {
      engines.push(engine);
      return engine;
    },
    async open(overrides = {}, opts = {}, sink = new CollectingSink()) {
      const engine = await AofEngine.open(
        testConfig(root, overrides),
        { logger: silentLogger, ...opts },
        sink,
      );
      engines.push(engine);
      return engine;
    },
  };
}
