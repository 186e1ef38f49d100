import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCheckAof } from '../../src/aof/check.js';
import { realFs } from '../../src/aof/fs.js';
import { loadAof } from '../../src/aof/loader.js';
import { readManifest } from '../../src/aof/manifest.js';
import { silentLogger } from '../../src/util/logger.js';
import {
  aofDir,
  baseName,
  buildAofqFile,
  buildBatch,
  CollectingSink,
  FIXED_MS,
  fileSize,
  flipByte,
  incrName,
  manifestFilePath,
  respRecords,
  testConfig,
  writeAofDir,
} from '../helpers/aof-fixtures.js';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-check-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const SET = (k: string, v: string) => ['SET', k, v];

async function check(argv: string[], answer?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = {
    stdout: (s: string) => {
      out += s;
    },
    stderr: (s: string) => {
      err += s;
    },
    ...(answer !== undefined ? { stdin: async () => answer } : {}),
  };
  const code = await runCheckAof(argv, io, realFs);
  return { code, out, err };
}

async function loadCommands(): Promise<string[]> {
  const sink = new CollectingSink();
  await loadAof(testConfig(root, { aofLoadTruncated: false }), realFs, sink, silentLogger);
  return sink.commands();
}

const manifest = () => manifestFilePath(root);

describe('check-aof: valid logs', () => {
  it('a multi-part AOF of ours: Redis output, exit 0', async () => {
    await writeAofDir(root, [
      {
        name: baseName(1),
        seq: 1,
        type: 'b',
        content: buildAofqFile({ kind: 'base', lsn: 0, batches: [[SET('foo', 'hello')]] }),
      },
      {
        name: incrName(1),
        seq: 1,
        type: 'i',
        content: buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('a', '1')]] }),
      },
    ]);
    const baseSize = await fileSize(path.join(aofDir(root), baseName(1)));
    const incrSize = await fileSize(path.join(aofDir(root), incrName(1)));
    const { code, out } = await check([manifest()]);
    expect(code).toBe(0);
    expect(out).toBe(
      [
        'Start checking Multi Part AOF',
        'Start to check BASE AOF (RESP format).',
        `AOF analyzed: filename=${baseName(1)}, size=${baseSize}, ok_up_to=${baseSize}, ok_up_to_line=8, diff=0`,
        `BASE AOF ${baseName(1)} is valid`,
        'Start to check INCR files.',
        `AOF analyzed: filename=${incrName(1)}, size=${incrSize}, ok_up_to=${incrSize}, ok_up_to_line=15, diff=0`,
        `INCR AOF ${incrName(1)} is valid`,
        'All AOF files and manifest are valid',
        '',
      ].join('\n'),
    );
  });

  it('empty files are reported as empty', async () => {
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: '' },
      { name: incrName(1), seq: 1, type: 'i', content: respRecords([SET('a', '1')]) },
    ]);
    const { code, out } = await check([manifest()]);
    expect(code).toBe(0);
    expect(out).toContain(`BASE AOF ${baseName(1)} is empty`);
  });

  it('a single file is checked as an old-style AOF', async () => {
    const file = path.join(root, 'x.aof');
    await fsp.writeFile(
      file,
      buildAofqFile({ kind: 'incr', lsn: 7, batches: [[SET('a', '1')], [SET('b', '2')]] }),
    );
    const { code, out } = await check([file]);
    expect(code).toBe(0);
    const size = await fileSize(file);
    expect(out).toBe(
      `Start checking Old-Style AOF\nAOF analyzed: filename=${file}, size=${size}, ok_up_to=${size}, ok_up_to_line=15, diff=0\nAOF ${file} is valid\n`,
    );
  });
});

describe('check-aof: damage', () => {
  async function shortRead(): Promise<{ good: Buffer }> {
    const good = respRecords([SET('foo', 'hello')]);
    await writeAofDir(root, [
      {
        name: incrName(1),
        seq: 1,
        type: 'i',
        content: Buffer.concat([good, respRecords([SET('bar', 'world')]).subarray(0, 20)]),
      },
    ]);
    return { good };
  }

  it('Short read: the utility says the AOF is not valid', async () => {
    await shortRead();
    const { code, out } = await check([manifest()]);
    expect(code).toBe(1);
    expect(out).toContain(`AOF ${incrName(1)} is not valid. Use the --fix option to try fixing it.`);
  });

  it('Short read: the utility shows the abnormal line number', async () => {
    await writeAofDir(root, [
      {
        name: incrName(1),
        seq: 1,
        type: 'i',
        content: Buffer.concat([respRecords([SET('foo', 'hello')]), Buffer.from('!!!')]),
      },
    ]);
    const { out } = await check([manifest()]);
    expect(out).toContain('ok_up_to_line=8');
    expect(out).toContain('ok_up_to=33');
  });

  it('Short read: --fix with "y" truncates, and the fixed AOF loads what was parseable', async () => {
    const { good } = await shortRead();
    const { code, out } = await check(['--fix', manifest()], 'y');
    expect(code).toBe(0);
    expect(out).toContain('Continue? [y/N]: ');
    expect(out).toContain(`Successfully truncated AOF ${incrName(1)}`);
    expect(out).toContain('All AOF files and manifest are valid');
    expect(await fileSize(path.join(aofDir(root), incrName(1)))).toBe(good.length);
    expect(await loadCommands()).toEqual(['SET foo hello']);
    expect((await check([manifest()])).code).toBe(0);
  });

  it('--fix with "n" changes nothing', async () => {
    await shortRead();
    const before = await fileSize(path.join(aofDir(root), incrName(1)));
    const { code, out } = await check(['--fix', manifest()], 'n');
    expect(code).toBe(1);
    expect(out).toContain('Aborting...');
    expect(await fileSize(path.join(aofDir(root), incrName(1)))).toBe(before);
  });

  it('--fix --yes does not ask', async () => {
    await shortRead();
    const { code, out } = await check(['--fix', '--yes', manifest()]);
    expect(code).toBe(0);
    expect(out).not.toContain('Continue?');
  });

  it('only truncates the last file for Multi Part AOF in fix mode', async () => {
    await writeAofDir(root, [
      {
        name: baseName(1),
        seq: 1,
        type: 'b',
        content: respRecords([SET('foo', 'hello'), ['MULTI'], SET('bar', 'world')]),
      },
      { name: incrName(1), seq: 1, type: 'i', content: respRecords([SET('k', 'v')]) },
    ]);
    expect((await check([manifest()])).out).toContain('not valid');
    const { code, out } = await check(['--fix', '--yes', manifest()]);
    expect(code).toBe(1);
    expect(out).toContain(`Failed to truncate AOF ${baseName(1)} because it is not the last file`);
  });

  it('names the first bad batch (file, offset, LSN) on a CRC mismatch, and says a valid batch follows', async () => {
    const head = buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('a', '1')]] });
    const bad = buildBatch([SET('b', 'hello')], { lsn: 2 });
    const after = buildBatch([SET('c', '3')], { lsn: 3 });
    await writeAofDir(root, [
      { name: incrName(1), seq: 1, type: 'i', content: Buffer.concat([head, bad, after]) },
    ]);
    await flipByte(path.join(aofDir(root), incrName(1)), head.length + bad.indexOf('hello'));
    const { code, out } = await check([manifest()]);
    expect(code).toBe(1);
    expect(out).toContain(`first bad batch: file=${incrName(1)}, offset=${head.length}, lsn=2`);
    expect(out).toContain('CRC mismatch');
    expect(out).toContain(`A valid batch follows the damage at offset ${head.length + bad.length}`);
    expect(out).toContain(`ok_up_to=${head.length}`);
  });

  it('a manifest format error', async () => {
    await writeAofDir(
      root,
      [{ name: incrName(1), seq: 1, type: 'i', content: respRecords([SET('a', '1')]) }],
      {
        manifestText: `file ${incrName(1)} seq 1 type i\n!!!\n`,
      },
    );
    const { code, out } = await check([manifest()]);
    expect(code).toBe(1);
    expect(out).toContain('Invalid AOF manifest file format');
  });

  it('a missing file', async () => {
    await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content: '', missing: true }]);
    const { code, out } = await check([manifest()]);
    expect(code).toBe(1);
    expect(out).toContain(`${incrName(1)}: No such file or directory, aborting...`);
  });

  it('usage errors exit 1', async () => {
    expect((await check([])).code).toBe(1);
    expect((await check(['--truncate-to-timestamp', 'abc', 'x'])).code).toBe(1);
    expect((await check(['--fix', '--truncate-to-timestamp', '1', 'x'])).code).toBe(1);
    expect((await check([path.join(root, 'nope.aof')])).out).toContain('No such file or directory');
  });
});

describe('check-aof --truncate-to-timestamp', () => {
  // Redis's case: #TS lines in a Redis-written incr file.
  const tsContent = () =>
    `#TS:1628217470\r\n${respRecords([SET('foo1', 'bar1')])}#TS:1628217471\r\n${respRecords([SET('foo2', 'bar2')])}#TS:1628217472\r\n#TS:1628217473\r\n${respRecords([SET('foo3', 'bar3')])}#TS:1628217474\r\n`;

  const cases: [number, string[]][] = [
    [1628217473, ['SET foo1 bar1', 'SET foo2 bar2', 'SET foo3 bar3']],
    [1628217471, ['SET foo1 bar1', 'SET foo2 bar2']],
    [1628217470, ['SET foo1 bar1']],
  ];
  for (const [t, keys] of cases) {
    it(`Truncate AOF to specific timestamp ${t}`, async () => {
      await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content: tsContent() }]);
      const { code, out } = await check(['--truncate-to-timestamp', String(t), manifest()]);
      expect(code).toBe(0);
      expect(out).toContain(`Successfully truncated AOF ${incrName(1)} to timestamp ${t}`);
      expect(await loadCommands()).toEqual(keys);
    });
  }

  it('aborts when nothing is before the timestamp', async () => {
    await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content: tsContent() }]);
    const { code, out } = await check(['--truncate-to-timestamp', '1628217469', manifest()]);
    expect(code).toBe(1);
    expect(out).toContain('aborting');
  });

  it('refuses to cut into the base (only incr files are cut)', async () => {
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: tsContent() },
      { name: incrName(1), seq: 1, type: 'i', content: respRecords([SET('k', 'v')]) },
    ]);
    const { code, out } = await check(['--truncate-to-timestamp', '1628217471', manifest()]);
    expect(code).toBe(1);
    expect(out).toMatch(/Failed to truncate AOF .* to timestamp 1628217471 because it is the base file/);
  });

  it('cuts our batches by their ms in an earlier incr file and drops later incr files from the manifest', async () => {
    const s = FIXED_MS / 1000;
    const incr1 = buildAofqFile({
      kind: 'incr',
      lsn: 0,
      batches: [
        { records: [SET('a', '1')], ms: FIXED_MS },
        { records: [SET('a', '2')], ms: FIXED_MS + 1500 },
        { records: [SET('a', '3')], ms: FIXED_MS + 2500 },
      ],
    });
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: buildAofqFile({ kind: 'base', lsn: 0, batches: [] }) },
      { name: incrName(2), seq: 2, type: 'i', content: incr1 },
      {
        name: incrName(3),
        seq: 3,
        type: 'i',
        content: buildAofqFile({
          kind: 'incr',
          lsn: 3,
          batches: [{ records: [SET('b', '4')], ms: FIXED_MS + 9000 }],
        }),
      },
    ]);
    const { code, out } = await check(['--truncate-to-timestamp', String(s + 1), manifest()]);
    expect(code).toBe(0);
    expect(out).toContain(`Dropped AOF ${incrName(3)} from the manifest (the file is left on disk)`);
    expect(out).toContain(`Successfully truncated AOF ${incrName(2)} to timestamp ${s + 1}`);
    const m = await readManifest(realFs, aofDir(root), 'appendonly.aof');
    expect(m?.entries.map((e) => e.name)).toEqual([baseName(1), incrName(2)]);
    expect(m?.nextSeq).toBe(4);
    expect(await loadCommands()).toEqual(['SET a 1', 'SET a 2']);
    expect(await fileSize(path.join(aofDir(root), incrName(3)))).toBeGreaterThan(0);
  });
});

describe('check-aof --rebuild-manifest', () => {
  it('writes a manifest from the files on disk, leaving out files older than the base', async () => {
    await writeAofDir(root, [
      { name: baseName(1), seq: 1, type: 'b', content: buildAofqFile({ kind: 'base', lsn: 0, batches: [] }) },
      {
        name: incrName(2),
        seq: 2,
        type: 'i',
        content: buildAofqFile({ kind: 'incr', lsn: 0, batches: [[SET('old', '1')]] }),
      },
      {
        name: baseName(3),
        seq: 3,
        type: 'b',
        content: buildAofqFile({ kind: 'base', lsn: 1, batches: [[SET('old', '1')]] }),
      },
      {
        name: incrName(4),
        seq: 4,
        type: 'i',
        content: buildAofqFile({ kind: 'incr', lsn: 1, batches: [[SET('new', '2')]] }),
      },
    ]);
    await fsp.unlink(manifest());
    const { code, out } = await check(['--rebuild-manifest', manifest()]);
    expect(code).toBe(0);
    expect(out).toContain(`Left out (older than the base): ${baseName(1)}`);
    expect(out).toContain(`Left out (older than the base): ${incrName(2)}`);
    expect(out).toContain('All AOF files and manifest are valid');
    const m = await readManifest(realFs, aofDir(root), 'appendonly.aof');
    expect(m?.entries).toEqual([
      { name: baseName(3), seq: 3, type: 'b', startLsn: 1 },
      { name: incrName(4), seq: 4, type: 'i', startLsn: 1 },
    ]);
    expect(m?.nextSeq).toBe(5);
    expect(await loadCommands()).toEqual(['SET old 1', 'SET new 2']);
  });

  it('asks before replacing an existing manifest', async () => {
    await writeAofDir(
      root,
      [{ name: incrName(1), seq: 1, type: 'i', content: respRecords([SET('a', '1')]) }],
      {
        manifestText: 'garbage\n',
      },
    );
    const { code, out } = await check(['--rebuild-manifest', manifest()], 'n');
    expect(code).toBe(1);
    expect(out).toContain('Continue? [y/N]: ');
    expect(await fsp.readFile(manifest(), 'utf8')).toBe('garbage\n');
    expect((await check(['--rebuild-manifest', manifest()], 'y')).code).toBe(0);
    expect(await loadCommands()).toEqual(['SET a 1']);
  });
});

describe('check-aof as a process', () => {
  it('exit codes and stdin through node --import tsx', async () => {
    await writeAofDir(root, [
      {
        name: incrName(1),
        seq: 1,
        type: 'i',
        content: Buffer.concat([respRecords([SET('foo', 'hello')]), Buffer.from('*3\r\n$3')]),
      },
    ]);
    const checkModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/aof/check.ts');
    const script = path.join(root, 'check-main.mts');
    await fsp.writeFile(
      script,
      `import { runCheckAof } from ${JSON.stringify(checkModule)};\n` +
        'const code = await runCheckAof(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });\n' +
        'process.exitCode = code;\n',
    );
    const run = (args: string[], input: string) =>
      new Promise<{ code: number | null; out: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, out });
        });
        child.stdin.end(input);
      });
    const bad = await run([manifest()], '');
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('is not valid');
    const fixed = await run(['--fix', manifest()], 'y\n');
    expect(fixed.out).toContain('Successfully truncated AOF');
    expect(fixed.code).toBe(0);
    const good = await run([manifest()], '');
    expect(good.code).toBe(0);
    expect(good.out).toContain('All AOF files and manifest are valid');
  }, 60_000);
});
