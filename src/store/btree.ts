/**
 * sorted-btree is CommonJS with an `exports.default`. Node's ESM loader hands
 * the whole `module.exports` to a default import, while vitest hands over the
 * class itself; this resolves both to the class.
 */
import sortedBtree from 'sorted-btree';

type BTreeClass = typeof sortedBtree.default;
const loaded = sortedBtree as unknown as BTreeClass | { default: BTreeClass };

export const BTree: BTreeClass = typeof loaded === 'function' ? loaded : loaded.default;
export type BTree<K, V> = sortedBtree.default<K, V>;
