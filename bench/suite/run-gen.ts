/**
 * Start the load generator (bench/suite/loadgen.ts) as its own Node process,
 * wait for its `RESULT` line, and kill it by PID when it overruns its cap.
 */
import { join } from 'node:path';
import { ROOT } from './config.js';
import type { GenResult, GenSpec } from './loadgen.js';
import { spawnTracked, stopProcess } from './procs.js';

const LOADGEN = join(ROOT, 'bench', 'suite', 'loadgen.ts');

export async function runGenerator(spec: GenSpec, timeoutMs: number): Promise<GenResult> {
  const proc = spawnTracked(
    `loadgen ${spec.target} ${spec.mode}`,
    process.execPath,
    ['--import', 'tsx', LOADGEN, JSON.stringify(spec)],
    {
      pipeStdout: true,
      cwd: ROOT,
    },
  );
  let out = '';
  proc.child.stdout?.setEncoding('utf8');
  proc.child.stdout?.on('data', (chunk: string) => {
    if (out.length < 1_000_000) out += chunk;
  });
  const timer = setTimeout(() => {
    process.stderr.write(`# ${proc.name}: over ${timeoutMs} ms, killing PID ${proc.pid}\n`);
    void stopProcess(proc, 'SIGKILL', 1000);
  }, timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || line === undefined) throw new Error(`${proc.name} failed (exit ${code})`);
  return JSON.parse(line.slice('RESULT '.length)) as GenResult;
}
