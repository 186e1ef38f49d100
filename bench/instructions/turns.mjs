// One of bench/instructions.ts's workloads (run under callgrind, from dist/): `count` add -> lease
// -> ack cycles in bench/queue-core.ts's shape, 50 loops that each await every operation, with
// replies once per event-loop turn. The third argument picks what answers:
//  - harness: operations that do nothing (the loops, their awaits and the turns alone);
//  - core: the queue core, replying once per turn as the node does, with no node and no AOF;
//  - node: the node layer with the real AOF (appendfsync everysec, in a temporary directory;
//    no auto-rewrite, which would start at a different cycle in the two counts' runs).
// Differences between the three split the node's cycle into harness, queue core and node + AOF.
// The core case reads the real clock and still counts within ±0.1 % (23,093 to 23,110 in three
// runs). The node case does not: its timers, the everysec fsync thread and the clock's
// milliseconds go with the run's speed, and five runs of one build gave 34,850 to 37,305
// (±3.5 %, also with appendfsync no). Use it for the split, not to tell builds apart by a few
// percent: writer-cycle and core-cycle do that.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { perTurn } from '../per-turn.mjs';

const [dist, count, mode] = process.argv.slice(2);
const LOOPS = 50;
const perLoop = Number(count) / LOOPS;
if (!Number.isInteger(perLoop)) throw new Error(`count must be a multiple of ${LOOPS}`);

let op;
let close = async () => {};
const config = { retention: { completed: true, failed: 1000 } };
if (mode === 'harness') {
  const reply = { jobs: [{ job: { id: '1' }, token: 1 }] };
  op = perTurn(() => reply);
} else if (mode === 'core') {
  const { Queues } = await import(`${dist}/queue/index.js`);
  const queues = new Queues();
  queues.execute({ op: 'setConfig', queue: 'cycle', config }, { nowMs: Date.now() });
  op = perTurn((request) => queues.execute(request, { nowMs: Date.now() }).result);
} else if (mode === 'node') {
  const { DEFAULT_AOF_CONFIG } = await import(`${dist}/aof/config.js`);
  const { AofqNode } = await import(`${dist}/node/node.js`);
  const dir = mkdtempSync(join(tmpdir(), 'aofq-instr-'));
  const node = await AofqNode.open({
    ...DEFAULT_AOF_CONFIG,
    dir,
    appendfsync: 'everysec',
    autoAofRewritePercentage: 0,
  });
  await node.queue({ op: 'setConfig', queue: 'cycle', config: { ...config, durability: 'default' } });
  op = (request) => node.queue(request);
  close = async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  };
} else {
  throw new Error(`unknown mode '${mode}' (harness, core or node)`);
}

const data = { payload: 'x'.repeat(86) };
let done = 0;
const loop = async () => {
  for (let i = 0; i < perLoop; i++) {
    await op({ op: 'add', queue: 'cycle', jobs: [{ name: 'email', data }] });
    const { jobs } = await op({ op: 'lease', queue: 'cycle', count: 1, leaseMs: 30_000 });
    for (const lease of jobs) {
      await op({ op: 'ack', queue: 'cycle', id: lease.job.id, token: lease.token });
      done++;
    }
  }
};
await Promise.all(Array.from({ length: LOOPS }, loop));
if (done !== Number(count)) throw new Error(`${done} cycles done of ${count}`);
await close();
