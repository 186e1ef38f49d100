/**
 * The suite's job payloads: a JSON object whose text is exactly N bytes
 * (100 by default), made of characters that need no escaping and do not
 * compress to nothing (Redis's RDB compresses long runs of one character).
 * The same text is a BullMQ job's data, an aofq job's data and a beanstalkd
 * job's body.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const POOL_CHARS = 1 << 16;
let pool = '';

function charPool(): string {
  if (pool === '') {
    let x = 42;
    const out: string[] = [];
    for (let i = 0; i < POOL_CHARS; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      out.push(ALPHABET[(x >>> 16) & 63] as string);
    }
    pool = out.join('');
  }
  return pool;
}

/** `{"p":"<index, 7 digits><filler>"}`, exactly `bytes` long; different for each index. */
export function payloadText(i: number, bytes = 100): string {
  const inner = bytes - '{"p":""}'.length;
  if (inner < 8) throw new Error(`payload of ${bytes} bytes is too small`);
  const chars = charPool();
  const fill = inner - 7;
  const at = (i * 131) % (POOL_CHARS - fill);
  const text = `{"p":"${String(i % 10_000_000).padStart(7, '0')}${chars.slice(at, at + fill)}"}`;
  if (text.length !== bytes) throw new Error(`payload length ${text.length} != ${bytes}`);
  return text;
}

export function payloadObject(i: number, bytes = 100): { p: string } {
  return JSON.parse(payloadText(i, bytes)) as { p: string };
}
