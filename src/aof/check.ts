/**
 * `aofq check-aof`: the check and repair tool, with redis-check-aof's output
 * and more. It checks a manifest (multi-part) or a single file, verifies every
 * batch's CRC and LSN and names the first bad batch; `--fix` truncates the
 * damaged tail of the last file (as Redis, after a `Continue? [y/N]`);
 * `--truncate-to-timestamp` cuts the log at the first batch later than a Unix
 * second, in whichever incr file it falls, and drops later incr files from the
 * manifest; `--rebuild-manifest` writes a manifest from the files on disk.
 * Parsing and verification are the loader's (scanFile), so the tool and the
 * server never disagree about what is valid.
 */
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { isAofqError } from '../errors/index.js';
import { LIMITS } from '../util/limits.js';
import type { FileHeader } from './format.js';
import { type FsLayer, realFs } from './fs.js';
import {
  findValidBatchAfter,
  hasRdbPreamble,
  listAofFiles,
  readFileHeader,
  type ScanFileResult,
  scanFile,
} from './loader.js';
import {
  type AofFileType,
  loadOrder,
  type Manifest,
  type ManifestEntry,
  parseManifest,
  persistManifest,
  serializeManifest,
} from './manifest.js';

export interface CheckIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** One line of the user's answer; default: the first line of process.stdin. */
  stdin?: () => Promise<string>;
}

interface Options {
  fix: boolean;
  yes: boolean;
  truncateToSeconds?: number;
  rebuildManifest: boolean;
}

const USAGE =
  'Usage: aofq check-aof [--fix [--yes]|--truncate-to-timestamp <unix-s>|--rebuild-manifest] <file.manifest|file.aof>';

/** Run the tool; resolves with the exit code. */
export async function runCheckAof(argv: string[], io: CheckIo, fs: FsLayer = realFs): Promise<number> {
  const program = new Command('aofq check-aof')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .description('Check an aofq (or Redis 7) AOF and repair it')
    .option('--fix', 'truncate the damaged tail of the last file')
    .option('--yes', 'do not ask before changing files')
    .option('--truncate-to-timestamp <unix-s>', 'cut the log at the first batch later than this Unix second')
    .option('--rebuild-manifest', 'write the manifest from the files on disk, then check')
    .argument('<path>', 'a manifest (multi-part AOF) or a single AOF file');
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    throw err;
  }
  const raw = program.opts<{
    fix?: boolean;
    yes?: boolean;
    truncateToTimestamp?: string;
    rebuildManifest?: boolean;
  }>();
  const target = program.args[0] as string;
  const options: Options = {
    fix: raw.fix === true,
    yes: raw.yes === true,
    rebuildManifest: raw.rebuildManifest === true,
  };
  if (raw.truncateToTimestamp !== undefined) {
    if (!/^\d{1,15}$/.test(raw.truncateToTimestamp)) {
      io.stderr(`Invalid timestamp '${raw.truncateToTimestamp}': expected Unix seconds\n${USAGE}\n`);
      return 1;
    }
    options.truncateToSeconds = Number(raw.truncateToTimestamp);
  }
  if (options.fix && options.truncateToSeconds !== undefined) {
    io.stderr(`--fix and --truncate-to-timestamp cannot be used together\n${USAGE}\n`);
    return 1;
  }
  const checker = new Checker(fs, io, options);
  try {
    if (options.rebuildManifest) return await checker.rebuildManifest(target);
    const size = await fs.size(target);
    if (size === null) {
      io.stdout(`Cannot open file ${target}: No such file or directory, aborting...\n`);
      return 1;
    }
    if (await isManifestFile(fs, target, size)) return await checker.checkMultiPart(target);
    return await checker.checkSingle(target, size);
  } catch (err) {
    if (isAofqError(err)) {
      io.stdout(`${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    io.stderr(`aofq check-aof: ${e.message ?? String(err)}\n`);
    return 1;
  }
}

/** A manifest: named `*.manifest`, or (as redis-check-aof) its first non-comment line starts with "file". */
async function isManifestFile(fs: FsLayer, target: string, size: number): Promise<boolean> {
  if (target.endsWith('.manifest')) return true;
  if (size > LIMITS.manifestMaxBytes) return false;
  for await (const chunk of fs.readChunks(target, LIMITS.manifestMaxLineBytes * 4)) {
    for (const line of chunk.toString('latin1').split('\n')) {
      if (line.startsWith('#')) continue;
      return line.startsWith('file ');
    }
  }
  return false;
}

function hex16(n: number): string {
  return `0x${n.toString(16).padStart(16, ' ')}`;
}

function defaultStdin(): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const onData = (chunk: Buffer | string): void => {
      data += chunk.toString();
      const nl = data.indexOf('\n');
      if (nl !== -1) finish(data.slice(0, nl));
    };
    const finish = (line: string): void => {
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.pause();
      resolve(line);
    };
    const onEnd = (): void => finish(data);
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
  });
}

interface FileVerdict {
  scan: ScanFileResult;
  size: number;
  /** A valid batch after the damage: not a torn tail. */
  validAfter: number | null;
}

class Checker {
  /** Redis's line counter runs across files and starts at 1. */
  private lines = 1;

  constructor(
    private readonly fs: FsLayer,
    private readonly io: CheckIo,
    private readonly options: Options,
  ) {}

  private out(line: string): void {
    this.io.stdout(`${line}\n`);
  }

  private async confirm(): Promise<boolean> {
    if (this.options.yes) return true;
    this.io.stdout('Continue? [y/N]: ');
    const answer = await (this.io.stdin ?? defaultStdin)();
    return /^\s*y/i.test(answer);
  }

  /** Scan one file and print Redis's `AOF analyzed` line (and the damage, if any). */
  private async analyze(
    filePath: string,
    name: string,
    size: number,
    type: AofFileType,
    lsnBefore: number,
    entryStartLsn: number | undefined,
  ): Promise<FileVerdict> {
    const scan = await scanFile({
      fs: this.fs,
      filePath,
      name,
      size,
      type,
      lsnBefore,
      ...(entryStartLsn !== undefined ? { entryStartLsn } : {}),
      ...(this.options.truncateToSeconds !== undefined
        ? { truncateToSeconds: this.options.truncateToSeconds }
        : {}),
    });
    this.lines += scan.lines;
    let validAfter: number | null = null;
    const d = scan.defect;
    if (d !== null) {
      const where =
        d.lsn !== undefined ? ` (first bad batch: file=${name}, offset=${d.offset}, lsn=${d.lsn})` : '';
      this.out(`${hex16(d.detectedAt)}: ${d.reason}${where}`);
      if (d.kind === 'format' && scan.header !== null) {
        validAfter = await findValidBatchAfter(this.fs, filePath, d.offset, size);
        if (validAfter !== null) {
          this.out(`A valid batch follows the damage at offset ${validAfter}: this is not a torn tail.`);
        }
      }
    }
    const okUpTo = d === null && scan.cut === null ? size : scan.validUpTo;
    this.out(
      `AOF analyzed: filename=${name}, size=${size}, ok_up_to=${okUpTo}, ok_up_to_line=${this.lines}, diff=${size - okUpTo}`,
    );
    return { scan, size, validAfter };
  }

  /** Handle a damaged file: fix it (last file only) or report it. Returns an exit code, or null when fixed. */
  private async handleDamage(
    filePath: string,
    name: string,
    v: FileVerdict,
    isLast: boolean,
  ): Promise<number | null> {
    const d = v.scan.defect!;
    if (!this.options.fix) {
      this.out(`AOF ${name} is not valid. Use the --fix option to try fixing it.`);
      return 1;
    }
    if (!isLast) {
      this.out(`Failed to truncate AOF ${name} because it is not the last file`);
      return 1;
    }
    if (d.kind === 'fatal' && d.offset === 0) {
      this.out(`Failed to truncate AOF ${name}: the damage is at its start (${d.reason})`);
      return 1;
    }
    const to = v.scan.validUpTo;
    if (v.validAfter !== null) {
      this.out(`Warning: valid batches after offset ${v.validAfter} will be lost too.`);
    }
    this.out(
      `This will shrink the AOF ${name} from ${v.size} bytes, with ${v.size - to} bytes, to ${to} bytes`,
    );
    if (!(await this.confirm())) {
      this.out('Aborting...');
      return 1;
    }
    await this.fs.truncate(filePath, to);
    this.out(`Successfully truncated AOF ${name}`);
    return null;
  }

  async checkSingle(filePath: string, size: number): Promise<number> {
    this.out('Start checking Old-Style AOF');
    // Redis names a single file by the path it was given.
    const name = filePath;
    if (size === 0) {
      this.out(`AOF ${name} is empty`);
      return 0;
    }
    if (await hasRdbPreamble(this.fs, filePath)) {
      this.out(`AOF ${name} starts with an RDB preamble: aofq checks RESP AOF files only`);
      return 1;
    }
    const header = await readFileHeader(this.fs, filePath);
    const type: AofFileType = header?.kind === 'base' ? 'b' : 'i';
    const v = await this.analyze(
      filePath,
      name,
      size,
      type,
      header?.kind === 'incr' ? header.lsn : 0,
      undefined,
    );
    if (v.scan.defect !== null) {
      const code = await this.handleDamage(filePath, name, v, true);
      if (code !== null) return code;
      return 0;
    }
    if (v.scan.cut !== null) return this.cutSingle(filePath, name, v, header);
    if (this.options.truncateToSeconds !== undefined) {
      this.out(`Truncate nothing in AOF ${name} to timestamp ${this.options.truncateToSeconds}`);
      return 0;
    }
    this.out(`AOF ${name} is valid`);
    return 0;
  }

  private async cutSingle(
    filePath: string,
    name: string,
    v: FileVerdict,
    header: FileHeader | null,
  ): Promise<number> {
    const cut = v.scan.cut!;
    const T = this.options.truncateToSeconds!;
    if (header?.kind === 'base') {
      this.out(`Failed to truncate AOF ${name} to timestamp ${T} because it is the base file`);
      return 1;
    }
    if (cut.offset <= v.scan.dataStart) {
      this.out(`AOF ${name} has nothing before timestamp ${T}, aborting...`);
      return 1;
    }
    await this.fs.truncate(filePath, cut.offset);
    this.out(`Successfully truncated AOF ${name} to timestamp ${T}`);
    return 0;
  }

  async checkMultiPart(manifestFile: string): Promise<number> {
    this.out('Start checking Multi Part AOF');
    const dirPath = path.dirname(manifestFile);
    const manifestSize = (await this.fs.size(manifestFile)) ?? 0;
    if (manifestSize > LIMITS.manifestMaxBytes) {
      this.out(
        `The AOF manifest file is ${manifestSize} bytes, over the limit of ${LIMITS.manifestMaxBytes}`,
      );
      return 1;
    }
    const text = (await this.fs.readFile(manifestFile)).toString('utf8');
    let manifest: Manifest;
    try {
      manifest = parseManifest(text);
    } catch (err) {
      if (isAofqError(err, 'AOFQ_ERR_AOF_MANIFEST')) {
        this.out(String(err.params.reason));
        return 1;
      }
      throw err;
    }
    const order = loadOrder(manifest);
    const sizes: number[] = [];
    for (const e of order) {
      const size = await this.fs.size(path.join(dirPath, e.name));
      if (size === null) {
        this.out(`Cannot open file ${dirPath}/${e.name}: No such file or directory, aborting...`);
        return 1;
      }
      sizes.push(size);
    }
    let lsn = 0;
    let incrStarted = false;
    for (let i = 0; i < order.length; i++) {
      const entry = order[i] as ManifestEntry;
      const size = sizes[i] as number;
      const filePath = path.join(dirPath, entry.name);
      const isLast = i === order.length - 1;
      const label = entry.type === 'b' ? 'BASE' : 'INCR';
      if (entry.type === 'b') {
        const rdb = await hasRdbPreamble(this.fs, filePath);
        this.out(`Start to check BASE AOF (${rdb ? 'RDB' : 'RESP'} format).`);
      } else if (!incrStarted) {
        incrStarted = true;
        this.out('Start to check INCR files.');
      }
      if (size === 0) {
        this.out(`${label} AOF ${entry.name} is empty`);
        continue;
      }
      const v = await this.analyze(filePath, entry.name, size, entry.type, lsn, entry.startLsn);
      if (v.scan.defect !== null) {
        const code = await this.handleDamage(filePath, entry.name, v, isLast);
        if (code !== null) return code;
        lsn = v.scan.lastLsn;
        continue;
      }
      if (v.scan.cut !== null) return this.cutMultiPart(dirPath, manifestFile, manifest, order, i, v);
      this.out(`${label} AOF ${entry.name} is valid`);
      lsn = v.scan.lastLsn;
    }
    if (this.options.truncateToSeconds !== undefined) {
      const last = order[order.length - 1];
      this.out(`Truncate nothing in AOF ${last?.name ?? ''} to timestamp ${this.options.truncateToSeconds}`);
    }
    this.out('All AOF files and manifest are valid');
    return 0;
  }

  private async cutMultiPart(
    dirPath: string,
    manifestFile: string,
    manifest: Manifest,
    order: ManifestEntry[],
    index: number,
    v: FileVerdict,
  ): Promise<number> {
    const entry = order[index] as ManifestEntry;
    const T = this.options.truncateToSeconds!;
    const cut = v.scan.cut!;
    if (entry.type === 'b') {
      this.out(`Failed to truncate AOF ${entry.name} to timestamp ${T} because it is the base file`);
      return 1;
    }
    if (index === 0 && cut.offset <= v.scan.dataStart) {
      this.out(`AOF ${entry.name} has nothing before timestamp ${T}, aborting...`);
      return 1;
    }
    const dropped = order.slice(index + 1).filter((e) => e.type === 'i');
    if (dropped.length > 0) {
      // The manifest first: a crash before the truncation leaves a longer, still consistent log.
      const droppedNames = new Set(dropped.map((e) => e.name));
      const next: Manifest = {
        ...manifest,
        entries: manifest.entries.filter((e) => !droppedNames.has(e.name)),
        nextSeq: Math.max(manifest.nextSeq ?? 1, ...manifest.entries.map((e) => e.seq + 1)),
      };
      await persistManifest(this.fs, dirPath, path.basename(manifestFile).replace(/\.manifest$/, ''), next);
      for (const e of dropped) this.out(`Dropped AOF ${e.name} from the manifest (the file is left on disk)`);
    }
    await this.fs.truncate(path.join(dirPath, entry.name), cut.offset);
    this.out(`Successfully truncated AOF ${entry.name} to timestamp ${T}`);
    return 0;
  }

  /** Write a manifest from the files on disk, then check it. */
  async rebuildManifest(manifestFile: string): Promise<number> {
    if (!manifestFile.endsWith('.manifest')) {
      this.out(
        `--rebuild-manifest needs the manifest path (<dir>/<appendfilename>.manifest), got ${manifestFile}`,
      );
      return 1;
    }
    const dirPath = path.dirname(manifestFile);
    const appendfilename = path.basename(manifestFile).slice(0, -'.manifest'.length);
    const files = await listAofFiles(this.fs, dirPath, appendfilename);
    const headers = new Map<string, FileHeader | null>();
    for (const f of files) headers.set(f.name, await readFileHeader(this.fs, path.join(dirPath, f.name)));
    const bases = files.filter((f) => f.kind === 'base');
    const base = bases[bases.length - 1];
    const baseLsn = base ? (headers.get(base.name)?.lsn ?? 0) : 0;
    const entries: ManifestEntry[] = [];
    const left: string[] = bases.slice(0, -1).map((f) => f.name);
    if (base) {
      const h = headers.get(base.name);
      entries.push({ name: base.name, seq: base.seq, type: 'b', ...(h ? { startLsn: h.lsn } : {}) });
    }
    for (const f of files) {
      if (f.kind !== 'incr') continue;
      const h = headers.get(f.name) ?? null;
      if (h !== null && h.lsn < baseLsn) {
        left.push(f.name);
        continue;
      }
      entries.push({ name: f.name, seq: f.seq, type: 'i', ...(h ? { startLsn: h.lsn } : {}) });
    }
    if (entries.length === 0) {
      this.out(
        `No AOF files named ${appendfilename}.<seq>.<base|incr>.aof in ${dirPath}: nothing to rebuild`,
      );
      return 1;
    }
    const manifest: Manifest = {
      entries,
      nextSeq: Math.max(...files.map((f) => f.seq)) + 1,
    };
    // Keep what the old manifest knew, when it can still be read.
    if ((await this.fs.size(manifestFile)) !== null) {
      try {
        const old = parseManifest((await this.fs.readFile(manifestFile)).toString('utf8'));
        if (old.replId !== undefined) manifest.replId = old.replId;
        if (old.nextSeq !== undefined) manifest.nextSeq = Math.max(manifest.nextSeq ?? 1, old.nextSeq);
      } catch {
        // A broken manifest is why we are here.
      }
    }
    this.out(`Rebuilt manifest for ${manifestFile}:`);
    this.io.stdout(serializeManifest(manifest));
    for (const name of left) this.out(`Left out (older than the base): ${name}`);
    if ((await this.fs.size(manifestFile)) !== null) {
      this.out(`This will replace ${manifestFile}`);
      if (!(await this.confirm())) {
        this.out('Aborting...');
        return 1;
      }
    }
    await persistManifest(this.fs, dirPath, appendfilename, manifest);
    this.out(`Successfully wrote ${manifestFile}`);
    return this.checkMultiPart(manifestFile);
  }
}
