// One of bench/instructions.ts's workloads (run under callgrind, from dist/): the AOF writer
// encoding a queue cycle's three records (Q.ADD with a 100-byte payload, Q.LEASE, Q.ACK), 50
// cycles a batch, into a file that only counts bytes. No timers and no clock reads in the loop.
const [dist, count] = process.argv.slice(2);
const { AofWriter } = await import(`${dist}/aof/writer.js`);
const { ManualClock } = await import(`${dist}/util/clock.js`);
const { silentLogger } = await import(`${dist}/util/logger.js`);
let bytes = 0;
const file = {
  writeSync: (buf) => {
    bytes += buf.length;
    return buf.length;
  },
  write: async (buf) => buf.length,
  datasync: async () => {},
  sync: async () => {},
  truncateSync() {},
  truncate: async () => {},
  size: async () => bytes,
  close: async () => {},
};
const clock = new ManualClock(1_764_620_000_000);
const writer = new AofWriter({
  file,
  fileName: 'count',
  size: 0,
  lastLsn: 0,
  policy: 'no',
  timestamps: true,
  clock,
  logger: silentLogger,
});
const ADD = Buffer.from('Q.ADD');
const LEASE = Buffer.from('Q.LEASE');
const ACK = Buffer.from('Q.ACK');
const data = JSON.stringify({ payload: 'x'.repeat(86) });
const now = 1_764_620_000_000;
let id = 1_000_000;
const batches = Number(count) / 50;
for (let b = 0; b < batches; b++) {
  for (let i = 0; i < 50; i++) {
    const text = String(id);
    writer.append([ADD, 'cycle', 1, text, 'email', '{}', data, now]);
    writer.append([LEASE, 'cycle', now, now + 30_000, id, 1]);
    writer.append([ACK, 'cycle', text, id, now]);
    id++;
  }
  // The batch goes out as at the end of a turn (the writer's flush is private to TypeScript only).
  writer.flush(false);
}
if (bytes === 0) throw new Error('nothing written');
