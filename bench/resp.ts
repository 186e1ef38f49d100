/**
 * Micro-benchmark of the RESP decoder (not a test). Decodes `SET key:NNN
 * <100 bytes>` commands pushed in 64 KiB chunks and prints commands/s for the
 * command fast path, with the copyBulks option, when the caller copies each
 * argument with Buffer.from, and the general
 * next() path. Run: npx tsx bench/resp.ts [commands]
 */
import { encodeCommand, RespDecoder } from '../src/resp/index.js';

const COMMANDS = Number(process.argv[2] ?? 1_000_000);
const CHUNK_BYTES = 64 * 1024;
const ROUNDS = 5;

function buildStream(): Buffer[] {
  const value = Buffer.alloc(100, 'v');
  const parts: Buffer[] = [];
  for (let i = 0; i < COMMANDS; i++) parts.push(encodeCommand(['SET', `key:${i}`, value]));
  const whole = Buffer.concat(parts);
  const chunks: Buffer[] = [];
  for (let at = 0; at < whole.length; at += CHUNK_BYTES) chunks.push(whole.subarray(at, at + CHUNK_BYTES));
  return chunks;
}

type Mode = 'nextCommand' | 'copyBulks' | 'nextCommand+copy' | 'next';

function run(chunks: readonly Buffer[], mode: Mode): number {
  const decoder = new RespDecoder({ copyBulks: mode === 'copyBulks' });
  let count = 0;
  let bytes = 0;
  const started = process.hrtime.bigint();
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (;;) {
      if (mode === 'next') {
        const event = decoder.next();
        if (event === undefined) break;
      } else {
        const event = decoder.nextCommand();
        if (event === undefined) break;
        if (mode === 'nextCommand+copy' && event.kind === 'command') {
          for (const arg of event.argv) bytes += Buffer.from(arg).length;
        }
      }
      count++;
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (count !== COMMANDS || decoder.buffered !== 0) throw new Error(`decoded ${count} of ${COMMANDS}`);
  if (mode === 'nextCommand+copy' && bytes === 0) throw new Error('nothing copied');
  return COMMANDS / seconds;
}

const chunks = buildStream();
const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
console.log(`${COMMANDS} commands, ${(total / 1024 / 1024).toFixed(1)} MiB in ${chunks.length} chunks`);
for (const mode of ['nextCommand', 'copyBulks', 'nextCommand+copy', 'next'] as const) {
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) rates.push(run(chunks, mode));
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(ROUNDS / 2)] ?? 0;
  const mib = (median * total) / COMMANDS / 1024 / 1024;
  console.log(
    `${mode.padEnd(18)} ${(median / 1e6).toFixed(2)} M commands/s (${mib.toFixed(0)} MiB/s, median of ${ROUNDS})`,
  );
}
