// One of bench/instructions.ts's workloads (run under callgrind, from dist/): N synchronous
// add -> lease -> ack cycles through Queues.execute, with times that advance by the count, not
// the clock, so that two runs execute the same instructions.
const [dist, count] = process.argv.slice(2);
const { Queues } = await import(`${dist}/queue/index.js`);
const queues = new Queues();
const start = 1_764_620_000_000;
queues.execute(
  { op: 'setConfig', queue: 'cycle', config: { retention: { completed: true, failed: 1000 } } },
  { nowMs: start },
);
const data = { payload: 'x'.repeat(86) };
const n = Number(count);
for (let i = 0; i < n; i++) {
  // About 16 commands share a millisecond, as a burst shares the node's cached time.
  const ctx = { nowMs: start + (i >> 4) };
  queues.execute({ op: 'add', queue: 'cycle', jobs: [{ name: 'email', data }] }, ctx);
  const { result } = queues.execute({ op: 'lease', queue: 'cycle', count: 1, leaseMs: 30_000 }, ctx);
  const lease = result.jobs[0];
  if (lease === undefined) throw new Error('nothing leased');
  queues.execute({ op: 'ack', queue: 'cycle', id: lease.job.id, token: lease.token }, ctx);
}
