/**
 * The servers of the suite: aofq (`node dist/cli/main.js server`), Debian's
 * redis-server and beanstalkd. Installs the Debian packages when missing
 * (apt-get update once, then apt-get install with a temporary policy-rc.d so
 * that no system service starts), starts each server on loopback with a fresh
 * data dir and a free port, waits until it serves, and stops it by PID.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import { CONFIG, ROOT } from './config.js';
import { freePort, type Managed, pollUntil, spawnTracked, stopProcess } from './procs.js';
import { pingOk } from './resp-client.js';

export type Fsync = 'no' | 'everysec' | 'always';

export interface PeerAvailability {
  redis: boolean;
  redisBenchmark: boolean;
  beanstalkd: boolean;
  bullmq: boolean;
  /** Why a peer is missing, or what the installer did. */
  notes: string[];
}

const has = (bin: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

function aptInstall(packages: string[], notes: string[]): void {
  if (!has('apt-get')) {
    notes.push('apt-get not available: cannot install missing peers');
    return;
  }
  const policy = '/usr/sbin/policy-rc.d';
  let madePolicy = false;
  try {
    if (!existsSync(policy)) {
      writeFileSync(policy, '#!/bin/sh\nexit 101\n');
      chmodSync(policy, 0o755);
      madePolicy = true;
    }
    process.stderr.write(`# installing ${packages.join(' ')} with apt-get\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync('apt-get', ['update', '-qq'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env,
      timeout: 300_000,
    });
    if (update.status !== 0) notes.push(`apt-get update exited ${update.status}`);
    const install = spawnSync('apt-get', ['install', '-y', '-q', ...packages], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env,
      timeout: 600_000,
    });
    notes.push(`apt-get install ${packages.join(' ')}: exit ${install.status}`);
  } catch (err) {
    notes.push(`apt-get failed: ${(err as Error).message}`);
  } finally {
    if (madePolicy) rmSync(policy, { force: true });
  }
}

export function ensurePeers(): PeerAvailability {
  const notes: string[] = [];
  const bins = ['redis-server', 'redis-cli', 'redis-benchmark', 'beanstalkd'];
  const missing = bins.filter((b) => !has(b));
  if (missing.length > 0 || process.env.BENCH_FORCE_INSTALL === '1') {
    if (CONFIG.install) aptInstall(['redis-server', 'redis-tools', 'beanstalkd'], notes);
    else notes.push(`BENCH_INSTALL=0: not installing (missing: ${missing.join(', ')})`);
  }
  let bullmq = false;
  try {
    const require = createRequire(join(ROOT, 'package.json'));
    require.resolve('bullmq');
    require.resolve('ioredis');
    bullmq = true;
  } catch {
    notes.push('bullmq/ioredis not resolvable from the project (devDependencies): BullMQ is missing');
  }
  const out: PeerAvailability = {
    redis: has('redis-server') && has('redis-cli'),
    redisBenchmark: has('redis-benchmark'),
    beanstalkd: has('beanstalkd'),
    bullmq,
    notes,
  };
  if (!out.redis) notes.push('redis-server missing: Redis and BullMQ peers skipped');
  if (!out.redisBenchmark) notes.push('redis-benchmark missing: engine workload skipped');
  if (!out.beanstalkd) notes.push('beanstalkd missing: beanstalkd peer skipped');
  out.bullmq = out.bullmq && out.redis;
  return out;
}

export function versions(avail: PeerAvailability): Record<string, string> {
  const v: Record<string, string> = { node: process.version };
  const tryRun = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  if (avail.redis) v.redis = /v=(\S+)/.exec(tryRun('redis-server', ['--version']))?.[1] ?? 'unknown';
  if (avail.beanstalkd) v.beanstalkd = tryRun('beanstalkd', ['-v']).replace(/^beanstalkd\s*/, '');
  const require = createRequire(join(ROOT, 'package.json'));
  for (const pkg of ['bullmq', 'ioredis', 'ws', 'undici']) {
    try {
      const file = require.resolve(`${pkg}/package.json`);
      v[pkg] = (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    } catch {
      // not installed
    }
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  v.aofq = pkg.version;
  v.aofqCommit = tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  v.aofqDirty =
    tryRun('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']) === '' ? 'no' : 'yes';
  return v;
}

// --- data dirs -----------------------------------------------------------------------

const dirs = new Set<string>();
export function freshDir(kind: string): string {
  const d = mkdtempSync(join(CONFIG.tmp, `aofq-bench-${kind}-`));
  dirs.add(d);
  return d;
}
export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}
export function removeAllDirs(): void {
  for (const d of [...dirs]) removeDir(d);
}

// --- servers -------------------------------------------------------------------------

export interface Server {
  readonly kind: 'aofq' | 'redis' | 'beanstalkd';
  readonly proc: Managed;
  readonly pid: number;
  /** aofq's HTTP port, Redis's port, beanstalkd's port. */
  readonly port: number;
  /** aofq's RESP port (0 when disabled), Redis's port for Redis. */
  readonly respPort: number;
  readonly dir: string;
  readonly logFile: string;
  /** Wall time from spawn to serving (ms): /readyz 200, first PONG, first accepted connection. */
  readonly readyMs: number;
  /** Epoch ms just before the spawn. */
  readonly spawnedAtEpochMs: number;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 600_000;
const STOP_GRACE_MS = 120_000;

async function httpReady(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Run `wait`; when it throws, stop the process (and remove a dir made for it) and rethrow with its log's tail. */
async function startedOrCleaned(
  proc: Managed,
  dir: string,
  ownDir: boolean,
  logFile: string,
  wait: () => Promise<void>,
): Promise<void> {
  try {
    await wait();
  } catch (err) {
    await stopProcess(proc, 'SIGKILL', 1000);
    let tail = '';
    try {
      tail = readFileSync(logFile, 'utf8').split('\n').slice(-6).join('\n');
    } catch {
      // no log
    }
    if (ownDir) removeDir(dir);
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
}

export interface AofqOptions {
  appendfsync: Fsync;
  /** Serve the RESP port (the engine workload); default off. */
  resp?: boolean;
  /** Reuse this data dir (a restart); default a fresh one. */
  dir?: string;
  /** More `--directive value` flags. */
  extra?: string[];
  /** Poll interval for /readyz (ms). */
  pollMs?: number;
}

export async function startAofq(o: AofqOptions): Promise<Server> {
  const dir = o.dir ?? freshDir('aofq');
  const port = await freePort();
  const respPort = o.resp ? await freePort() : 0;
  const logFile = join(dir, 'aofq.log');
  // BENCH_AOFQ_MAIN: another build's entry point (a .ts one runs through tsx); default the built CLI.
  const main = process.env.BENCH_AOFQ_MAIN ?? join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build (npm run bench does)`);
  const args = [
    ...(main.endsWith('.ts') ? ['--import', 'tsx'] : []),
    main,
    'server',
    '--dir',
    dir,
    '--port',
    String(port),
    '--appendfsync',
    o.appendfsync,
    '--resp-port',
    String(respPort),
    ...(o.extra ?? []),
  ];
  const spawnedAtEpochMs = Date.now();
  const t0 = performance.now();
  const proc = spawnTracked('aofq', process.execPath, args, {
    logFile,
    cwd: main.endsWith('.ts') ? ROOT : dir,
  });
  let readyMs = 0;
  await startedOrCleaned(proc, dir, o.dir === undefined, logFile, async () => {
    await pollUntil('aofq /readyz', () => httpReady(port), {
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: o.pollMs ?? 10,
      alive: () => !proc.hasExited(),
    });
    readyMs = performance.now() - t0;
    if (respPort > 0) {
      await pollUntil('aofq RESP port', () => pingOk(respPort), {
        timeoutMs: 30_000,
        alive: () => !proc.hasExited(),
      });
    }
  });
  return {
    kind: 'aofq',
    proc,
    pid: proc.pid,
    port,
    respPort,
    dir,
    logFile,
    readyMs,
    spawnedAtEpochMs,
    stop: () => stopProcess(proc, 'SIGTERM', STOP_GRACE_MS),
  };
}

export interface RedisOptions {
  appendfsync: Fsync;
  dir?: string;
  /** aof-use-rdb-preamble (default yes, Redis's default). */
  preamble?: boolean;
  extra?: string[];
}

export async function startRedis(o: RedisOptions): Promise<Server> {
  const dir = o.dir ?? freshDir('redis');
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    o.appendfsync,
    '--aof-use-rdb-preamble',
    o.preamble === false ? 'no' : 'yes',
    '--daemonize',
    'no',
    '--logfile',
    logFile,
    ...(o.extra ?? []),
  ];
  const spawnedAtEpochMs = Date.now();
  const t0 = performance.now();
  const proc = spawnTracked('redis-server', 'redis-server', args, { cwd: dir });
  let readyMs = 0;
  await startedOrCleaned(proc, dir, o.dir === undefined, logFile, async () => {
    await pollUntil('redis PONG', () => pingOk(port), {
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: 10,
      alive: () => !proc.hasExited(),
    });
    readyMs = performance.now() - t0;
  });
  return {
    kind: 'redis',
    proc,
    pid: proc.pid,
    port,
    respPort: port,
    dir,
    logFile,
    readyMs,
    spawnedAtEpochMs,
    stop: () => stopProcess(proc, 'SIGTERM', STOP_GRACE_MS),
  };
}

export interface BeanstalkdOptions {
  /** default: binlog with beanstalkd's default fsync (-f 50 ms); f0: fsync every write (-f 0). */
  binlog: 'default' | 'f0';
}

export async function startBeanstalkd(o: BeanstalkdOptions): Promise<Server> {
  const dir = freshDir('beanstalkd');
  const port = await freePort();
  const logFile = join(dir, 'beanstalkd.log');
  const args = [
    '-l',
    '127.0.0.1',
    '-p',
    String(port),
    '-b',
    join(dir),
    ...(o.binlog === 'f0' ? ['-f', '0'] : []),
  ];
  const spawnedAtEpochMs = Date.now();
  const t0 = performance.now();
  const proc = spawnTracked('beanstalkd', 'beanstalkd', args, { logFile, cwd: dir });
  await startedOrCleaned(proc, dir, true, logFile, () =>
    pollUntil('beanstalkd accept', () => tcpAccepts(port), {
      timeoutMs: 30_000,
      intervalMs: 10,
      alive: () => !proc.hasExited(),
    }),
  );
  return {
    kind: 'beanstalkd',
    proc,
    pid: proc.pid,
    port,
    respPort: 0,
    dir,
    logFile,
    readyMs: performance.now() - t0,
    spawnedAtEpochMs,
    stop: () => stopProcess(proc, 'SIGTERM', 10_000),
  };
}

/** Stop a server and remove its data dir. */
export async function discard(s: Server): Promise<void> {
  await s.stop();
  removeDir(s.dir);
}
