/**
 * Two builds of aofq compared on the queue-core bench's node case, in one process: add -> lease
 * -> ack through the node and the AOF, appendfsync everysec, 50 loops. The builds run in
 * alternating rounds (A then B, then B then A, ...), each on its own node and temporary
 * directory, and the ratio B/A is taken per round. On this 2-vCPU VM the speed moves by 1.5-2x
 * between minutes, so rates from separate runs cannot show a 10 % change; rounds a second
 * apart share the machine's phase, and the median of their ratios can.
 *
 * A build is the output of `tsc -p tsconfig.build.json --outDir <dir>` of some commit, e.g.
 *   git worktree add /tmp/old <commit> && (cd /tmp/old && ln -s $PWD/node_modules . && npx tsc -p tsconfig.build.json --outDir /tmp/old-dist)
 * Run: node --import tsx bench/queue-paired.ts <distA> <distB>   (ROUNDS, default 12; ROUND_SECONDS, default 1.5)
 * Prints the median rate of each and the median per-round ratio B/A with its range; writes
 * bench/results/queue-paired-<time>.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface NodeLike {
  queue(request: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void>;
}

const [distA, distB] = process.argv.slice(2);
if (distA === undefined || distB === undefined) {
  throw new Error('usage: node --import tsx bench/queue-paired.ts <distA> <distB>');
}
const ROUNDS = Number(process.env.ROUNDS ?? 12);
const SECONDS = Number(process.env.ROUND_SECONDS ?? 1.5);
const LOOPS = 50;
const dirs: string[] = [];

async function open(dist: string): Promise<NodeLike> {
  const root = pathToFileURL(resolve(dist)).href;
  const { DEFAULT_AOF_CONFIG } = await import(`${root}/aof/config.js`);
  const { AofqNode } = await import(`${root}/node/node.js`);
  const dir = await mkdtemp(join(tmpdir(), 'aofq-paired-'));
  dirs.push(dir);
  const node = (await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec' })) as NodeLike;
  await node.queue({
    op: 'setConfig',
    queue: 'cycle',
    config: { durability: 'default', retention: { completed: true, failed: 1000 } },
  });
  return node;
}

/** The queue-core bench's loop (runLoops): cycles/s over `seconds`. */
async function run(node: NodeLike, seconds: number): Promise<number> {
  const data = { payload: 'x'.repeat(86) };
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      await node.queue({ op: 'add', queue: 'cycle', jobs: [{ name: 'email', data }] });
      const { jobs } = (await node.queue({ op: 'lease', queue: 'cycle', count: 1, leaseMs: 30_000 })) as {
        jobs: Array<{ job: { id: string }; token: number }>;
      };
      for (const lease of jobs) {
        await node.queue({ op: 'ack', queue: 'cycle', id: lease.job.id, token: lease.token });
        done++;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: LOOPS }, loop));
  return done / ((performance.now() - start) / 1000);
}

const median = (list: number[]): number => [...list].sort((x, y) => x - y)[list.length >> 1] ?? Number.NaN;

const a = await open(distA);
const b = await open(distB);
try {
  await run(a, 1); // warm up both
  await run(b, 1);
  const ratesA: number[] = [];
  const ratesB: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const aFirst = round % 2 === 0;
    const first = await run(aFirst ? a : b, SECONDS);
    const second = await run(aFirst ? b : a, SECONDS);
    const rateA = aFirst ? first : second;
    const rateB = aFirst ? second : first;
    ratesA.push(rateA);
    ratesB.push(rateB);
    ratios.push(rateB / rateA);
  }
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    distA: resolve(distA),
    distB: resolve(distB),
    rounds: ROUNDS,
    secondsPerRound: SECONDS,
    medianA: Math.round(median(ratesA)),
    medianB: Math.round(median(ratesB)),
    medianRatio: Number(median(ratios).toFixed(3)),
    minRatio: Number(Math.min(...ratios).toFixed(3)),
    maxRatio: Number(Math.max(...ratios).toFixed(3)),
    ratesA: ratesA.map(Math.round),
    ratesB: ratesB.map(Math.round),
  };
  console.log(
    `A ${result.medianA} cycles/s, B ${result.medianB} cycles/s; median per-round B/A ${result.medianRatio} ` +
      `(${result.minRatio}-${result.maxRatio}) over ${ROUNDS} rounds`,
  );
  const out = join(import.meta.dirname, 'results', `queue-paired-${result.date.replace(/[:.]/g, '-')}.json`);
  await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${out}`);
} finally {
  await a.close();
  await b.close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}
