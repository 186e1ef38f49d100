/**
 * Instructions per queue cycle, counted by valgrind's callgrind: the one measure on this
 * machine that does not move with its speed of the moment (wall-clock rates move 2x between
 * hours here; the queue-core bench's ratios only partly cancel that). Each workload runs
 * under `node --predictable` (no concurrent compilation or GC threads: the same instructions
 * every run) at two cycle counts, and the difference over the extra cycles is reported, so
 * start-up, module loading and warm-up cancel out, provided that both counts are past the
 * compilation of everything the loop runs (code run once a batch gets hot late).
 *
 * Workloads (bench/instructions/*.mjs, against dist/):
 *  - core-cycle: add -> lease -> ack through Queues.execute, synchronously (the queue core:
 *    validation, decisions, records, apply);
 *  - writer-cycle: the AOF writer encoding those three records, 50 cycles a batch;
 *  - turns-harness, turns-core, turns-node (turns.mjs): the queue-core bench's own shape, 50
 *    loops that await every operation, replies once per turn, answered by nothing, by the
 *    queue core alone, and by the node with the real AOF (everysec). Their differences split
 *    the node's cycle into the harness, the queue core with its replies, and node + AOF. The
 *    node's count moves with the run's speed (its timers, the fsync thread, the clock): ±3.5 %
 *    over five runs of one build. It gives the split; writer-cycle and core-cycle, deterministic
 *    to ±0.2 %, tell builds apart.
 *
 * Run: npm run bench:instructions   (needs valgrind: `apt-get install valgrind`); BENCH_DIST=<dir>
 * counts another build instead of dist/.
 * Writes bench/results/instructions-<time>.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
// BENCH_DIST points at another build (an older commit's tsc output) to compare two.
const DIST = process.env.BENCH_DIST ?? join(ROOT, 'dist');
const WORKLOADS: Array<{ name: string; file: string; low: number; high: number; mode?: string }> = [
  { name: 'core-cycle', file: 'core-cycle.mjs', low: 40_000, high: 120_000 },
  // Both counts past the compilation of the per-batch code (flush, seal: one call per 50 cycles):
  // at 50k/150k the difference still held TurboFan's work on them, about 1.6k a cycle.
  { name: 'writer-cycle', file: 'writer-cycle.mjs', low: 200_000, high: 400_000 },
  { name: 'turns-harness', file: 'turns.mjs', low: 100_000, high: 300_000, mode: 'harness' },
  { name: 'turns-core', file: 'turns.mjs', low: 100_000, high: 300_000, mode: 'core' },
  { name: 'turns-node', file: 'turns.mjs', low: 100_000, high: 300_000, mode: 'node' },
];

function valgrindVersion(): string {
  try {
    return execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('valgrind is not installed (apt-get install valgrind)');
  }
}

/** Total instructions (callgrind's "I refs") of one run of `file` with `count` cycles. */
function countInstructions(file: string, count: number, mode?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        '--callgrind-out-file=/dev/null',
        process.execPath,
        '--predictable',
        join(import.meta.dirname, 'instructions', file),
        DIST,
        String(count),
        ...(mode === undefined ? [] : [mode]),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const refs = /I\s+refs:\s+([\d,]+)/.exec(stderr);
      if (code !== 0 || refs?.[1] === undefined) {
        reject(new Error(`valgrind ${file} ${count} exited ${code}: ${stderr.slice(-2000)}`));
        return;
      }
      resolve(Number(refs[1].replaceAll(',', '')));
    });
  });
}

const version = valgrindVersion();
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  valgrind: version,
  dist: DIST,
};
const rows: Record<string, number> = {};
for (const { name, file, low, high, mode } of WORKLOADS) {
  // The two counts run side by side: one core each.
  const [a, b] = await Promise.all([countInstructions(file, low, mode), countInstructions(file, high, mode)]);
  rows[name] = Math.round((b - a) / (high - low));
  console.log(`${name.padEnd(15)} ${rows[name]} instructions per cycle (${high} - ${low} cycles)`);
}
results.instructionsPerCycle = rows;
const { 'turns-harness': harness, 'turns-core': core, 'turns-node': node } = rows;
if (harness !== undefined && core !== undefined && node !== undefined) {
  // The node's cycle in the bench's shape, split by the differences between the three.
  const split = { harness, queueCore: core - harness, nodeAndAof: node - core };
  results.turnsSplit = split;
  console.log(
    `the node's cycle (${node}): harness ${split.harness}, queue core with its replies ` +
      `${split.queueCore}, node + AOF ${split.nodeAndAof} (of it the writer's encoding: writer-cycle)`,
  );
}
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
const out = join(
  ROOT,
  'bench',
  'results',
  `instructions-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
);
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`wrote ${out}`);
