/**
 * Debian's redis-check-aof (Redis 7.0) accepts what aofq writes: files with
 * the aofq header, batch annotations and #TS lines, and a manifest carrying
 * our extra fields. And our check-aof prints the same `AOF analyzed` lines as
 * Redis's on the same files.
 */
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCheckAof } from '../../src/aof/check.js';
import { realFs } from '../../src/aof/fs.js';
import { persistManifest } from '../../src/aof/manifest.js';
import {
  aofDir,
  baseName,
  buildAofqFile,
  incrName,
  manifestFilePath,
  respRecords,
  writeAofDir,
} from '../helpers/aof-fixtures.js';

const REDIS_CHECK_AOF = '/usr/bin/redis-check-aof';
let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-rca-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

function redisCheck(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(REDIS_CHECK_AOF, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end();
  });
}

async function ourCheck(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await runCheckAof(args, { stdout: (s) => (out += s), stderr: (s) => (out += s) }, realFs);
  return { code, out };
}

const analyzed = (out: string) => out.split('\n').filter((l) => l.startsWith('AOF analyzed:'));
const SET = (k: string, v: string) => ['SET', k, v];

async function ourDir(): Promise<string> {
  const dir = aofDir(root);
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(
    path.join(dir, baseName(1)),
    buildAofqFile({
      kind: 'base',
      lsn: 0,
      timestamps: true,
      batches: [[SET('a', '1'), ['HSET', 'h', 'f', 'v']]],
    }),
  );
  await fsp.writeFile(
    path.join(dir, incrName(2)),
    buildAofqFile({
      kind: 'incr',
      lsn: 0,
      timestamps: true,
      batches: [
        [SET('b', '2')],
        [
          ['INCR', 'n'],
          ['DEL', 'a'],
        ],
      ],
    }),
  );
  await persistManifest(realFs, dir, 'appendonly.aof', {
    entries: [
      { name: baseName(1), seq: 1, type: 'b', startLsn: 0, extra: { futurekey: 'value' } },
      { name: incrName(2), seq: 2, type: 'i', startLsn: 0 },
    ],
    nextSeq: 3,
    replId: 'abcdef0123',
    baseSize: 123,
  });
  return dir;
}

describe('redis-check-aof (Redis 7.0) on files written in the aofq format', () => {
  it('accepts the manifest path: exit 0, every file valid', async () => {
    const dir = await ourDir();
    const { code, out } = await redisCheck(['appendonly.aof.manifest'], dir);
    expect(out).toContain('Start checking Multi Part AOF');
    expect(out).toContain(`BASE AOF ${baseName(1)} is valid`);
    expect(out).toContain(`INCR AOF ${incrName(2)} is valid`);
    expect(out).toContain('All AOF files and manifest are valid');
    expect(code).toBe(0);
  });

  it('accepts each file path (checked as an old-style AOF)', async () => {
    const dir = await ourDir();
    for (const name of [baseName(1), incrName(2)]) {
      const { code, out } = await redisCheck([path.join(dir, name)], dir);
      expect(out).toContain('Start checking Old-Style AOF');
      expect(out).toContain(`AOF ${path.join(dir, name)} is valid`);
      expect(code).toBe(0);
      const ours = await ourCheck([path.join(dir, name)]);
      expect(ours.out).toBe(out);
    }
  });

  it('our check-aof prints the same AOF analyzed lines as Redis on valid files', async () => {
    const dir = await ourDir();
    const theirs = await redisCheck(['appendonly.aof.manifest'], dir);
    const ours = await ourCheck([manifestFilePath(root)]);
    expect(ours.code).toBe(0);
    expect(analyzed(ours.out)).toEqual(analyzed(theirs.out));
    expect(analyzed(ours.out)).toHaveLength(2);
  });

  const damaged: [string, Buffer][] = [
    ['garbage after a record', Buffer.concat([respRecords([SET('foo', 'hello')]), Buffer.from('!!!')])],
    ['unexpected EXEC', respRecords([SET('foo', 'hello'), ['EXEC']])],
    [
      'a valid Redis file with MULTI/EXEC and #TS',
      Buffer.concat([
        Buffer.from('#TS:1\r\n'),
        respRecords([['MULTI'], SET('a', '1'), ['EXEC'], SET('b', '2')]),
      ]),
    ],
  ];
  for (const [what, content] of damaged) {
    it(`same verdict and AOF analyzed line as Redis: ${what}`, async () => {
      await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content }]);
      const theirs = await redisCheck(['appendonly.aof.manifest'], aofDir(root));
      const ours = await ourCheck([manifestFilePath(root)]);
      expect(ours.code).toBe(theirs.code);
      expect(analyzed(ours.out)).toEqual(analyzed(theirs.out));
    });
  }

  const torn: [string, Buffer][] = [
    [
      'a partial record',
      Buffer.concat([respRecords([SET('foo', 'hello')]), respRecords([SET('bar', 'x')]).subarray(0, 20)]),
    ],
    ['an unfinished MULTI', respRecords([SET('foo', 'hello'), ['MULTI'], SET('bar', 'x')])],
  ];
  for (const [what, content] of torn) {
    it(`same verdict and ok_up_to as Redis: ${what}`, async () => {
      await writeAofDir(root, [{ name: incrName(1), seq: 1, type: 'i', content }]);
      const theirs = await redisCheck(['appendonly.aof.manifest'], aofDir(root));
      const ours = await ourCheck([manifestFilePath(root)]);
      expect(ours.code).toBe(1);
      expect(theirs.code).toBe(1);
      const okUpTo = (out: string) => /ok_up_to=(\d+),/.exec(out)?.[1];
      expect(okUpTo(ours.out)).toBeDefined();
      expect(okUpTo(ours.out)).toBe(okUpTo(theirs.out));
    });
  }
});
