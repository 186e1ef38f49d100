/**
 * A node over the real AOF in a fresh temporary directory (appendfsync everysec unless `cfg`
 * says otherwise), closed and its directory removed when the calling test finishes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofqNode, type NodeOptions } from '../../src/node/node.js';

export async function openTempNode(
  prefix: string,
  options: NodeOptions = {},
  cfg: Partial<AofConfig> = {},
): Promise<AofqNode> {
  const dir = await mkdtemp(join(tmpdir(), `aofq-${prefix}-`));
  let node: AofqNode | null = null;
  onTestFinished(async () => {
    await node?.close();
    await rm(dir, { recursive: true, force: true });
  });
  node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec', ...cfg }, options);
  return node;
}
