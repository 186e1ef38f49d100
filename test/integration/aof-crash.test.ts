/**
 * Crash test with real processes: a child appends under `appendfsync always`
 * from 20 writers and reports each durable LSN; the parent SIGKILLs it at a
 * random moment, reloads the directory with loadAof and checks that every
 * reported record is there with its content, and that the LSNs run from 1
 * without gaps or duplicates. The same directory is reused across runs, so each
 * run appends to what the previous one left (including a torn tail).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { realFs } from '../../src/aof/fs.js';
import { loadAof } from '../../src/aof/loader.js';
import { silentLogger } from '../../src/util/logger.js';
import { redisCheckAof } from '../fault/faulty-fs.js';
import { makeTempDir, removeDir } from '../helpers/aof-fixtures.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'fixtures', 'aof-crash-child.ts');
const RUNS = 20;
/** ~25 s on an idle 2-core machine (each run starts node + tsx); the limit leaves room for a busy one. */
const TEST_TIMEOUT_MS = 90_000;

let root: string;
let child: ChildProcess | null = null;

beforeAll(async () => {
  root = await makeTempDir('aofq-crash-');
});

afterAll(async () => {
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await removeDir(root);
});

interface RunResult {
  reported: Map<number, string>;
  startLsn: number;
  stderr: string;
}

/** Start the child, kill it after `delayMs` past ready or after `killAfterLines` reports, whichever first. */
function runOnce(runId: number, delayMs: number, killAfterLines: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const reported = new Map<number, string>();
    let startLsn = -1;
    let stderr = '';
    let buffered = '';
    let killed = false;
    const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, root, String(runId)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      proc.kill('SIGKILL');
    };
    const watchdog = setTimeout(() => {
      kill();
      reject(new Error(`run ${runId}: the child never became ready`));
    }, 20_000);
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (text: string) => {
      buffered += text;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [first, second] = line.split(' ');
        if (first === 'ready') {
          startLsn = Number(second);
          setTimeout(kill, delayMs);
          continue;
        }
        reported.set(Number(first), second as string);
        if (reported.size >= killAfterLines) kill();
      }
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (text: string) => {
      stderr += text;
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(watchdog);
      child = null;
      if (signal !== 'SIGKILL') {
        reject(new Error(`run ${runId}: child exited with ${code}/${signal}: ${stderr}`));
        return;
      }
      // A line cut by the kill is not a report.
      resolve({ reported, startLsn, stderr });
    });
  });
}

describe('AOF crash safety', () => {
  it(
    'keeps every reported-durable record across repeated SIGKILLs, LSNs consecutive from 1',
    async () => {
      const allReported = new Map<number, string>();
      let runs = 0;
      let previousLast = 0;
      let seed = 42;
      const random = (): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      for (let run = 0; run < RUNS; run++) {
        const byTime = random() < 0.5;
        const delayMs = byTime ? 20 + Math.floor(random() * 280) : 10_000;
        const killAfter = byTime ? Number.POSITIVE_INFINITY : 1 + Math.floor(random() * 3000);
        const result = await runOnce(run, delayMs, killAfter);
        runs++;
        // The child continued from what the previous run left on disk.
        expect(result.startLsn).toBe(previousLast);
        for (const [lsn, id] of result.reported) {
          expect(allReported.has(lsn)).toBe(false);
          allReported.set(lsn, id);
        }

        const byLsn = new Map<number, string>();
        const lsns: number[] = [];
        const load = await loadAof(
          { ...DEFAULT_AOF_CONFIG, dir: root, appendfsync: 'always' },
          realFs,
          {
            record: (argv, lsn) => {
              lsns.push(lsn);
              byLsn.set(lsn, argv[2]?.toString('utf8') ?? '');
            },
          },
          silentLogger,
        );
        // No gaps, no duplicates: 1..n.
        expect(lsns.length).toBe(load.lastLsn);
        for (let i = 0; i < lsns.length; i++) if (lsns[i] !== i + 1) expect(lsns[i]).toBe(i + 1);
        // Every record ever reported durable is there with its content.
        for (const [lsn, id] of allReported) if (byLsn.get(lsn) !== id) expect(byLsn.get(lsn)).toBe(id);
        expect(load.lastLsn).toBeGreaterThanOrEqual(Math.max(0, ...result.reported.keys()));
        previousLast = load.lastLsn;
      }
      expect(runs).toBeGreaterThanOrEqual(20);
      expect(allReported.size).toBeGreaterThan(100);
      const dir = path.join(root, 'appendonlydir');
      expect(redisCheckAof(path.join(dir, 'appendonly.aof.manifest')).status).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});
