/**
 * The AOF manifest: which files make up the log, in which order, and aofq's
 * own bookkeeping. The syntax is Redis 7's (`file <name> seq <n> type <b|h|i>`,
 * names quoted as Redis's sdscatrepr/sdssplitargs do), so redis-server and
 * redis-check-aof read our manifests. aofq's additions ride where Redis's
 * parser ignores them: a `startlsn <n>` pair after the three Redis pairs, and
 * one `#aofq-manifest ...` comment line (Redis skips lines starting with '#').
 * Parsing is strict and reports Redis's own messages. Writing is atomic: a temp
 * file, fsync, rename over the manifest, fsync of the directory.
 */
import * as path from 'node:path';
import { AofqError } from '../errors/index.js';
import { assert, assertUint } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import { FORMAT_VERSION, manifestFileName } from './format.js';
import type { FsLayer } from './fs.js';

export type AofFileType = 'b' | 'h' | 'i';

export interface ManifestEntry {
  name: string;
  seq: number;
  type: AofFileType;
  /** First LSN minus one: all records <= startLsn precede this file. */
  startLsn?: number;
  /** Other key/value pairs kept as read (keys as written, values unquoted). */
  extra?: Record<string, string>;
}

export interface Manifest {
  entries: ManifestEntry[];
  /** Ours, on the `#aofq-manifest` comment line. */
  formatVersion?: number;
  replId?: string;
  baseSize?: number;
  /** Next sequence number never to be reused: max seq ever used + 1. */
  nextSeq?: number;
}

// Redis's messages (aof.c, aofLoadManifestFromFile).
export const MANIFEST_MESSAGES = Object.freeze({
  invalidFormat: 'Invalid AOF manifest file format',
  tooLongLine: 'The AOF manifest file contains too long line',
  pathNotName: "File can't be a path, just a filename",
  duplicateBase: 'Found duplicate base file information',
  nonMonotonic: 'Found a non-monotonic sequence number',
  unknownType: 'Unknown AOF file type',
  empty: 'Found an empty AOF manifest',
});

const STANDARD_KEYS = new Set(['file', 'seq', 'type', 'startlsn']);
const META_PREFIX = '#aofq-manifest';
const UINT_RE = /^\d{1,15}$/;
const REPL_ID_RE = /^[0-9A-Za-z]{1,64}$/;

function manifestError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_AOF_MANIFEST', { reason });
}

function parseUint(text: string): number | null {
  if (!UINT_RE.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/** True for a plain file name: no directory part, not `.`/`..`, no NUL. */
export function isPlainFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\\') &&
    !name.includes('\0')
  );
}

// --- sdssplitargs / sdscatrepr, our own implementation -------------------------

const SPACE = new Set([' ', '\t', '\n', '\r', '\v', '\f']);
const HEX_RE = /^[0-9a-fA-F]{2}$/;
const ESCAPES: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, b: 0x08, a: 0x07 };

/**
 * Split a line into arguments the way Redis's sdssplitargs does: whitespace
 * separates; "double quotes" take \n \r \t \b \a \xHH and \<any>; 'single
 * quotes' take \'; a closing quote must be followed by whitespace or the end.
 * Returns null for unbalanced quotes. Each argument is the bytes it denotes,
 * decoded as UTF-8.
 */
export function splitArgs(line: string): string[] | null {
  const args: string[] = [];
  let i = 0;
  const n = line.length;
  for (;;) {
    while (i < n && SPACE.has(line[i] as string)) i++;
    if (i >= n) return args;
    const bytes: number[] = [];
    const pushText = (text: string): void => {
      for (const b of Buffer.from(text, 'utf8')) bytes.push(b);
    };
    let inDouble = false;
    let inSingle = false;
    let done = false;
    while (!done) {
      if (inDouble) {
        if (i >= n) return null;
        const c = line[i] as string;
        if (c === '\\' && line[i + 1] === 'x' && HEX_RE.test(line.slice(i + 2, i + 4))) {
          bytes.push(Number.parseInt(line.slice(i + 2, i + 4), 16));
          i += 3;
        } else if (c === '\\' && i + 1 < n) {
          i++;
          const e = line[i] as string;
          const code = ESCAPES[e];
          if (code !== undefined) bytes.push(code);
          else pushText(e);
        } else if (c === '"') {
          if (i + 1 < n && !SPACE.has(line[i + 1] as string)) return null;
          done = true;
        } else {
          pushText(c);
        }
      } else if (inSingle) {
        if (i >= n) return null;
        const c = line[i] as string;
        if (c === '\\' && line[i + 1] === "'") {
          i++;
          bytes.push(0x27);
        } else if (c === "'") {
          if (i + 1 < n && !SPACE.has(line[i + 1] as string)) return null;
          done = true;
        } else {
          pushText(c);
        }
      } else {
        if (i >= n) {
          done = true;
          continue;
        }
        const c = line[i] as string;
        if (SPACE.has(c)) done = true;
        else if (c === '"') inDouble = true;
        else if (c === "'") inSingle = true;
        else pushText(c);
      }
      if (i < n) i++;
    }
    const buf = Buffer.from(bytes);
    const text = buf.toString('utf8');
    // A name whose bytes are not UTF-8 could never match a file Node opens.
    if (!Buffer.from(text, 'utf8').equals(buf)) return null;
    args.push(text);
  }
}

function needsQuoting(bytes: Buffer): boolean {
  if (bytes.length === 0) return true;
  for (const b of bytes) {
    if (b <= 0x20 || b >= 0x7f || b === 0x22 || b === 0x27 || b === 0x5c) return true;
  }
  return false;
}

/** Quote an argument as Redis's sdscatrepr does, when sdssplitargs would need it. */
export function quoteArg(value: string): string {
  const bytes = Buffer.from(value, 'utf8');
  if (!needsQuoting(bytes)) return value;
  let out = '"';
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b === 0x09) out += '\\t';
    else if (b === 0x07) out += '\\a';
    else if (b === 0x08) out += '\\b';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `${out}"`;
}

// --- parse ----------------------------------------------------------------------

function parseMetaLine(line: string, m: Manifest): void {
  const pairs = line.slice(META_PREFIX.length).trim().split(/\s+/).filter(Boolean);
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw manifestError(`${MANIFEST_MESSAGES.invalidFormat}: bad aofq field '${pair}'`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (key === 'repl-id') {
      if (!REPL_ID_RE.test(value)) throw manifestError(`${MANIFEST_MESSAGES.invalidFormat}: bad repl-id`);
      m.replId = value;
      continue;
    }
    const n = parseUint(value);
    if (n === null) throw manifestError(`${MANIFEST_MESSAGES.invalidFormat}: bad aofq field '${pair}'`);
    if (key === 'v') {
      if (n < 1 || n > FORMAT_VERSION) {
        throw manifestError(
          `Unsupported aofq manifest version ${n} (this aofq reads up to ${FORMAT_VERSION})`,
        );
      }
      m.formatVersion = n;
    } else if (key === 'next-seq') m.nextSeq = n;
    else if (key === 'base-size') m.baseSize = n;
    // Unknown aofq fields are ignored, as Redis ignores unknown pairs.
  }
}

/**
 * Parse a manifest strictly. Throws AofqError('AOFQ_ERR_AOF_MANIFEST') with
 * Redis's message as `reason`. Whether the listed files exist is checked at load.
 */
export function parseManifest(text: string, maxLineBytes: number = LIMITS.manifestMaxLineBytes): Manifest {
  assert(maxLineBytes > 0, 'maxLineBytes');
  const m: Manifest = { entries: [] };
  let haveBase = false;
  let maxIncrSeq = 0;
  const names = new Set<string>();
  let pos = 0;
  let lineCount = 0;
  const maxLines = Math.ceil(text.length / 2) + 1;
  while (pos < text.length) {
    lineCount++;
    assert(lineCount <= maxLines, 'manifest line loop bound');
    const nl = text.indexOf('\n', pos);
    const raw = nl === -1 ? text.slice(pos) : text.slice(pos, nl);
    pos = nl === -1 ? text.length : nl + 1;
    // Redis reads lines of at most MANIFEST_MAX_LINE bytes with their '\n'; a
    // final line without '\n' is also "too long" to Redis (fgets never saw the end).
    const tooLong = Buffer.byteLength(raw) + 1 > maxLineBytes;
    if (raw.startsWith('#')) {
      if (tooLong) throw manifestError(MANIFEST_MESSAGES.tooLongLine);
      if (raw === META_PREFIX || raw.startsWith(`${META_PREFIX} `)) parseMetaLine(raw, m);
      continue;
    }
    if (tooLong || nl === -1) throw manifestError(MANIFEST_MESSAGES.tooLongLine);
    const line = raw.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    if (line.length === 0) throw manifestError(MANIFEST_MESSAGES.invalidFormat);
    const args = splitArgs(line);
    if (args === null || args.length < 6 || args.length % 2 !== 0) {
      throw manifestError(MANIFEST_MESSAGES.invalidFormat);
    }
    let name: string | undefined;
    let seq: number | undefined;
    let typeText: string | undefined;
    let startLsn: number | undefined;
    const extra: Record<string, string> = {};
    const seen = new Set<string>();
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i] as string;
      const value = args[i + 1] as string;
      const lower = key.toLowerCase();
      if (seen.has(lower)) throw manifestError(MANIFEST_MESSAGES.invalidFormat);
      seen.add(lower);
      if (lower === 'file') {
        if (value.includes('/') || value.includes('\\')) throw manifestError(MANIFEST_MESSAGES.pathNotName);
        if (!isPlainFileName(value)) throw manifestError(MANIFEST_MESSAGES.invalidFormat);
        name = value;
      } else if (lower === 'seq') {
        const n = parseUint(value);
        if (n === null) throw manifestError(MANIFEST_MESSAGES.invalidFormat);
        seq = n;
      } else if (lower === 'type') {
        typeText = value;
      } else if (lower === 'startlsn') {
        const n = parseUint(value);
        if (n === null) throw manifestError(`${MANIFEST_MESSAGES.invalidFormat}: bad startlsn`);
        startLsn = n;
      } else {
        extra[key] = value;
      }
    }
    // Redis: a missing name, seq (or seq 0) or type is a format error.
    if (name === undefined || seq === undefined || seq === 0 || typeText === undefined) {
      throw manifestError(MANIFEST_MESSAGES.invalidFormat);
    }
    if (typeText !== 'b' && typeText !== 'h' && typeText !== 'i') {
      throw manifestError(MANIFEST_MESSAGES.unknownType);
    }
    const type: AofFileType = typeText;
    if (type === 'b') {
      if (haveBase) throw manifestError(MANIFEST_MESSAGES.duplicateBase);
      haveBase = true;
    } else if (type === 'i') {
      if (seq <= maxIncrSeq) throw manifestError(MANIFEST_MESSAGES.nonMonotonic);
      maxIncrSeq = seq;
    }
    if (names.has(name)) throw manifestError(`Found duplicate AOF file name ${quoteArg(name)}`);
    names.add(name);
    const entry: ManifestEntry = { name, seq, type };
    if (startLsn !== undefined) entry.startLsn = startLsn;
    if (Object.keys(extra).length > 0) entry.extra = extra;
    m.entries.push(entry);
  }
  if (!m.entries.some((e) => e.type === 'b' || e.type === 'i')) throw manifestError(MANIFEST_MESSAGES.empty);
  return m;
}

// --- serialize ------------------------------------------------------------------

function entryLine(e: ManifestEntry): string {
  assert(isPlainFileName(e.name), `manifest entry name must be a plain file name: ${e.name}`);
  assert(Number.isSafeInteger(e.seq) && e.seq >= 1, 'manifest entry seq');
  let line = `file ${quoteArg(e.name)} seq ${e.seq} type ${e.type}`;
  if (e.startLsn !== undefined) {
    assertUint(e.startLsn, 'manifest startLsn');
    line += ` startlsn ${e.startLsn}`;
  }
  for (const [key, value] of Object.entries(e.extra ?? {})) {
    assert(!STANDARD_KEYS.has(key.toLowerCase()), `extra manifest key shadows a standard key: ${key}`);
    line += ` ${quoteArg(key)} ${quoteArg(value)}`;
  }
  return `${line}\n`;
}

/** The manifest as text: our comment line, then base, history and incr entries (Redis's order). */
export function serializeManifest(m: Manifest): string {
  let meta = `${META_PREFIX} v=${m.formatVersion ?? FORMAT_VERSION}`;
  if (m.nextSeq !== undefined) {
    assertUint(m.nextSeq, 'nextSeq');
    meta += ` next-seq=${m.nextSeq}`;
  }
  if (m.baseSize !== undefined) {
    assertUint(m.baseSize, 'baseSize');
    meta += ` base-size=${m.baseSize}`;
  }
  if (m.replId !== undefined) {
    assert(REPL_ID_RE.test(m.replId), 'replId must be 1-64 alphanumerics');
    meta += ` repl-id=${m.replId}`;
  }
  let out = `${meta}\n`;
  for (const type of ['b', 'h', 'i'] as const) {
    for (const e of m.entries) if (e.type === type) out += entryLine(e);
  }
  return out;
}

// --- helpers --------------------------------------------------------------------

export function baseEntry(m: Manifest): ManifestEntry | undefined {
  return m.entries.find((e) => e.type === 'b');
}

export function incrEntries(m: Manifest): ManifestEntry[] {
  return m.entries.filter((e) => e.type === 'i');
}

export function historyEntries(m: Manifest): ManifestEntry[] {
  return m.entries.filter((e) => e.type === 'h');
}

/** The files to load, in order: the base, then every incr in manifest order (history skipped). */
export function loadOrder(m: Manifest): ManifestEntry[] {
  const base = baseEntry(m);
  return base ? [base, ...incrEntries(m)] : incrEntries(m);
}

/** The sequence number to use next: never one that any entry or the recorded counter used. */
export function nextSequence(m: Manifest): number {
  let max = 0;
  for (const e of m.entries) max = Math.max(max, e.seq);
  return Math.max(m.nextSeq ?? 1, max + 1);
}

export function manifestPath(dirPath: string, appendfilename: string): string {
  return path.join(dirPath, manifestFileName(appendfilename));
}

export function tempManifestPath(dirPath: string, appendfilename: string): string {
  return path.join(dirPath, `temp-${manifestFileName(appendfilename)}`);
}

// --- disk -----------------------------------------------------------------------

/**
 * Write the manifest atomically: a temp file, fsync, rename over the manifest,
 * fsync of the directory. File-system errors are passed through as they are.
 */
export async function persistManifest(
  fs: FsLayer,
  dirPath: string,
  appendfilename: string,
  m: Manifest,
): Promise<void> {
  const bytes = Buffer.from(serializeManifest(m), 'utf8');
  const temp = tempManifestPath(dirPath, appendfilename);
  const file = await fs.open(temp, 'truncate');
  try {
    let written = 0;
    // Each pass writes at least one byte or throws; the bound is the length.
    for (let pass = 0; written < bytes.length; pass++) {
      assert(pass <= bytes.length, 'manifest write loop bound');
      const n = await file.write(bytes.subarray(written), written);
      if (n <= 0) throw new Error(`short write of ${temp}: wrote 0 of ${bytes.length - written} bytes`);
      written += n;
    }
    await file.sync();
  } finally {
    await file.close();
  }
  await fs.rename(temp, manifestPath(dirPath, appendfilename));
  await fs.fsyncDir(dirPath);
}

/** The manifest in `dirPath`, or null when there is none. */
export async function readManifest(
  fs: FsLayer,
  dirPath: string,
  appendfilename: string,
): Promise<Manifest | null> {
  const file = manifestPath(dirPath, appendfilename);
  const size = await fs.size(file);
  if (size === null) return null;
  if (size > LIMITS.manifestMaxBytes) {
    throw manifestError(
      `The AOF manifest file is ${size} bytes, over the limit of ${LIMITS.manifestMaxBytes}`,
    );
  }
  const bytes = await fs.readFile(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw manifestError(`${MANIFEST_MESSAGES.invalidFormat}: not UTF-8`);
  }
  return parseManifest(text);
}
