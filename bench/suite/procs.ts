/**
 * Child processes of the benchmark suite: every server and load generator it
 * starts is registered here and stopped by its PID, on a normal stop, on an
 * error, on Ctrl-C (SIGINT/SIGTERM) and, as a last resort, with SIGKILL from
 * the process 'exit' handler. Also owns the /proc readings the suite reports
 * for each process (CPU ticks, RSS) and the bounded polling helper.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface Managed {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when ended by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  hasExited(): boolean;
}

const live = new Set<Managed>();

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File that receives the child's stdout and stderr (default: discarded). */
  logFile?: string;
  /** Keep the child's stdout as a pipe (for load generators that print their result). */
  pipeStdout?: boolean;
}

export function spawnTracked(
  name: string,
  command: string,
  args: readonly string[],
  opts: SpawnOptions = {},
): Managed {
  const log = opts.logFile !== undefined ? openSync(opts.logFile, 'a') : 'ignore';
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', opts.pipeStdout ? 'pipe' : log, opts.pipeStdout ? 'inherit' : log],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${name} (${command})`);
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      done = true;
      resolve(code);
    });
  });
  const managed: Managed = { name, pid, child, exited, hasExited: () => done };
  live.add(managed);
  void exited.then(() => live.delete(managed));
  return managed;
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(
  m: Managed,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 30_000,
): Promise<void> {
  if (m.hasExited()) return;
  try {
    process.kill(m.pid, signal);
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await m.exited;
  clearTimeout(timer);
}

export async function stopAll(graceMs = 5000): Promise<void> {
  await Promise.all([...live].map((m) => stopProcess(m, 'SIGTERM', graceMs)));
}

function killAllSync(): void {
  for (const m of live) {
    try {
      process.kill(m.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let installed = false;
/** Stop every child on exit, error, Ctrl-C; `onFatal` runs first (e.g. to remove temporary dirs). */
export function installCleanup(onFatal: () => void): void {
  if (installed) return;
  installed = true;
  let stopping = false;
  const bail = (code: number, why: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n# ${why}: stopping ${live.size} child process(es) by PID\n`);
    void stopAll(3000)
      .catch(() => {})
      .finally(() => {
        try {
          onFatal();
        } catch {
          // best effort
        }
        process.exit(code);
      });
  };
  process.on('SIGINT', () => bail(130, 'SIGINT'));
  process.on('SIGTERM', () => bail(143, 'SIGTERM'));
  process.on('uncaughtException', (err) => {
    console.error(err);
    bail(1, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    console.error(err);
    bail(1, 'unhandled rejection');
  });
  process.on('exit', killAllSync);
}

// --- /proc readings ------------------------------------------------------------------

let clockTicks = 0;
function clkTck(): number {
  if (clockTicks === 0) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system) of a process in ms, NaN when it cannot be read. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clkTck();
  } catch {
    return Number.NaN;
  }
}

/** Resident set size in bytes (VmRSS), NaN when it cannot be read. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU of several processes over a window, in percent of one core. */
export function cpuWindow(pids: Record<string, number>): () => Record<string, number> {
  const t0 = performance.now();
  const start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  return () => {
    const wall = performance.now() - t0;
    const out: Record<string, number> = {};
    for (const [k, pid] of Object.entries(pids))
      out[k] = (100 * (cpuMs(pid) - (start[k] ?? Number.NaN))) / wall;
    return out;
  };
}

// --- helpers -------------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Poll `probe` every `intervalMs` until it returns true, at most `timeoutMs`
 * (and never more than timeoutMs / intervalMs + 1 tries). Throws on timeout, or
 * when `alive()` turns false (the process being waited for died).
 */
export async function pollUntil(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; alive?: () => boolean },
): Promise<void> {
  const interval = opts.intervalMs ?? 20;
  const deadline = performance.now() + opts.timeoutMs;
  const maxTries = Math.ceil(opts.timeoutMs / interval) + 1;
  for (let i = 0; i < maxTries && performance.now() < deadline; i++) {
    if (await probe()) return;
    if (opts.alive && !opts.alive()) throw new Error(`${what}: the process exited`);
    await sleep(interval);
  }
  throw new Error(`${what}: not reached within ${opts.timeoutMs} ms`);
}
