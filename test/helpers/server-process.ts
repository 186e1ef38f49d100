/**
 * Start a real `aofq server` process on a free loopback port for a test, wait
 * until /readyz answers 200, and stop it by its PID (SIGTERM, or SIGKILL for
 * crash tests). Runs the TypeScript sources through tsx, so no build is needed.
 *
 * Test servers run in parallel: none may take the default RESP port 7379. A
 * server gets `--resp-port 0` (no RESP port) unless the test asks for one with
 * `resp: true` (a free port, on the handle as `respPort`) or `respPort: n`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** `node --import tsx src/cli/main.ts server <args>`: the sources through tsx, no build step. */
function serverCommand(args: readonly string[]): string[] {
  return ['--import', 'tsx', MAIN, 'server', ...args];
}
const READY_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 25;
/** Keep at most this much of a child's output. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

export interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  /** The RESP port the server was started with; null when it has none (`--resp-port 0`). */
  readonly respPort: number | null;
  readonly url: string;
  /** ws://127.0.0.1:<port>/v1/ws */
  readonly wsUrl: string;
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Send a signal and wait for the exit; resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  args?: readonly string[];
  env?: Readonly<Record<string, string>>;
  /** Wait for /readyz to answer 200 (default true). */
  waitReady?: boolean;
  /** Pick this port instead of a free one. */
  port?: number;
  /** Give the server a RESP port on a free loopback port (default: none, `--resp-port 0`). */
  resp?: boolean;
  /** Give the server this RESP port (implies `resp`). */
  respPort?: number;
}

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

function capture(stream: NodeJS.ReadableStream | null, sink: { text: string }): void {
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    if (sink.text.length < MAX_OUTPUT_BYTES) sink.text += chunk;
  });
}

function childEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // Only the basics: no AOFQ_* from the test runner's environment leaks in.
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'NODE_OPTIONS']) {
    if (process.env[key] !== undefined) env[key] = process.env[key];
  }
  return { ...env, ...extra };
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(
      () => reject(new Error(`process ${child.pid} did not exit in ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const respPort = options.respPort ?? (options.resp === true ? await freePort() : null);
  const child = spawn(
    process.execPath,
    serverCommand([
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--resp-port',
      String(respPort ?? 0),
      ...(options.args ?? []),
    ]),
    { cwd: ROOT, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const out = { text: '' };
  const err = { text: '' };
  capture(child.stdout, out);
  capture(child.stderr, err);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the server process');
  const url = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    pid,
    port,
    respPort,
    url,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    child,
    stdout: () => out.text,
    stderr: () => err.text,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, signal);
      return waitExit(child, EXIT_TIMEOUT_MS);
    },
  };
  if (options.waitReady === false) return server;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `server exited (${child.exitCode ?? child.signalCode}) before ready:\n${err.text}\n${out.text}`,
      );
    }
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.status === 200) return server;
      await response.body?.cancel();
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop('SIGKILL');
      throw new Error(`server not ready in ${READY_TIMEOUT_MS} ms:\n${err.text}\n${out.text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

/**
 * Run `aofq server <args>` expecting it to exit by itself (a config error); returns its code and output.
 * It gets `--resp-port 0` first, so that it never binds 7379; `args` may override it.
 */
export async function runServerToExit(
  args: readonly string[],
  env?: Readonly<Record<string, string>>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, serverCommand(['--resp-port', '0', ...args]), {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { text: '' };
  const err = { text: '' };
  capture(child.stdout, out);
  capture(child.stderr, err);
  try {
    const code = await waitExit(child, EXIT_TIMEOUT_MS);
    return { code, stdout: out.text, stderr: err.text };
  } finally {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL');
    }
  }
}
