/**
 * The ordered set that holds one state's jobs: a B+tree keyed by
 * (sortKey, order) (compareJobs), whose keys are the jobs themselves.
 *
 * Why our own and not sorted-btree, which the store still uses: every
 * add → lease → ack moves a job in and out of three sets, mostly at their
 * ends (waiting: in at the back, out at the front; completed: in at the back,
 * out at the front). sorted-btree's delete goes through its generic range
 * editor: an insert plus a delete of the smallest key cost 860 ns at 50 keys
 * and 1,000 ns at 5,000; here 150 ns and 565 ns (docs/ARCHITECTURE.md, "The
 * job sets"). The leaves are deques: a leaf keeps the index of its first key,
 * so taking the smallest key out is one store, and a key inserted or deleted
 * in the middle moves the shorter side. Moving keys is what costs: every store
 * of a young job into an old array goes through V8's write barrier (about
 * 7 ns), so a splice at the front of a 64-key leaf alone costs about 350 ns.
 *
 * Shape: a leaf holds up to `maxNode` keys in order, from `head` on. An inner
 * node holds up to `maxNode` children and, for each, the largest key below it,
 * so a search descends into the first child whose largest key is not below the
 * key sought.
 * A node that overflows splits in two halves. A node left with fewer than a
 * quarter of `maxNode` keys is merged into a neighbour when both fit in one
 * node, and an empty node is removed, so every operation is O(log n) and no
 * node but the root is ever empty. Not safe to mutate while iterating `keys()`.
 */
import { assert } from '../util/assert.js';
import { compareJobs, type SetKey } from './job.js';

/** A tree node: a leaf when `children` is null; otherwise keys[i] is the largest key under children[i]. */
class Node {
  constructor(
    public keys: SetKey[],
    public children: Node[] | null,
    /** Leaves only: keys[head] is the first key; the slots before it are empty. Inner nodes: 0. */
    public head = 0,
  ) {}

  get size(): number {
    return this.keys.length - this.head;
  }
}

/** The first index in [from, keys.length) whose key is not below `key` (keys.length if none). */
function lowerBound(keys: readonly SetKey[], from: number, key: SetKey): number {
  let lo = from;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareJobs(keys[mid] as SetKey, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function maxKey(node: Node): SetKey {
  const key = node.keys[node.keys.length - 1];
  assert(key !== undefined && node.size > 0, 'a non-root node is never empty');
  return key;
}

/** What insertInto returns when the key is already in the set. */
const DUPLICATE = new Node([], null);

export const JOB_SET_NODE_SIZE = 64;

export class JobSet {
  private root = new Node([], null);
  private count = 0;
  private readonly minNode: number;

  constructor(private readonly maxNode: number = JOB_SET_NODE_SIZE) {
    assert(Number.isInteger(maxNode) && maxNode >= 4, 'a job set node holds at least 4 keys');
    this.minNode = maxNode >> 2;
  }

  get size(): number {
    return this.count;
  }

  /** The smallest key, or undefined when the set is empty. */
  minKey(): SetKey | undefined {
    let node = this.root;
    while (node.children !== null) node = node.children[0] as Node;
    return node.keys[node.head];
  }

  has(key: SetKey): boolean {
    let node = this.root;
    for (;;) {
      const i = lowerBound(node.keys, node.head, key);
      if (i === node.keys.length) return false;
      if (node.children === null) return compareJobs(node.keys[i] as SetKey, key) === 0;
      node = node.children[i] as Node;
    }
  }

  /** Adds `key`; false (and no change) if an equal key is in the set. */
  add(key: SetKey): boolean {
    const root = this.root;
    const split = this.insertInto(root, key);
    if (split === DUPLICATE) return false;
    if (split !== null) this.root = new Node([maxKey(root), maxKey(split)], [root, split]);
    this.count++;
    return true;
  }

  /** Removes the key equal to `key`; false if there is none. */
  delete(key: SetKey): boolean {
    if (!this.removeFrom(this.root, key)) return false;
    this.count--;
    let root = this.root;
    while (root.children !== null && root.children.length === 1) root = root.children[0] as Node;
    if (root.children !== null && root.children.length === 0) root = new Node([], null);
    this.root = root;
    assert(this.count > 0 || root.size === 0, 'an empty set has an empty root');
    return true;
  }

  clear(): void {
    this.root = new Node([], null);
    this.count = 0;
  }

  /** The keys in order, from the first one not below `start` (from the smallest without it). */
  *keys(start?: SetKey): IterableIterator<SetKey> {
    // The path from the root: each inner node with the index of the child being walked.
    const path: Node[] = [];
    const at: number[] = [];
    let node = this.root;
    while (node.children !== null) {
      const i = start === undefined ? 0 : lowerBound(node.keys, 0, start);
      if (i === node.keys.length) return;
      path.push(node);
      at.push(i);
      node = node.children[i] as Node;
    }
    let leaf: Node | undefined = node;
    let i = start === undefined ? leaf.head : lowerBound(leaf.keys, leaf.head, start);
    while (leaf !== undefined) {
      for (; i < leaf.keys.length; i++) yield leaf.keys[i] as SetKey;
      // The next leaf: up to the nearest ancestor with a child to the right, then down its left edge.
      leaf = undefined;
      while (path.length > 0) {
        const depth = path.length - 1;
        const parent = path[depth] as Node;
        const next = (at[depth] as number) + 1;
        const children = parent.children as Node[];
        if (next < children.length) {
          at[depth] = next;
          let down = children[next] as Node;
          while (down.children !== null) {
            path.push(down);
            at.push(0);
            down = down.children[0] as Node;
          }
          leaf = down;
          i = down.head;
          break;
        }
        path.pop();
        at.pop();
      }
    }
  }

  /** Checks every structural invariant (tests; O(n)). Throws on the first one broken. */
  verify(): void {
    let leafDepth = -1;
    let previous: SetKey | undefined;
    let seen = 0;
    const walk = (node: Node, depth: number, isRoot: boolean): void => {
      assert(isRoot || node.size > 0, 'only the root may be empty');
      assert(node.size <= this.maxNode, 'a node holds at most maxNode keys');
      for (let j = 0; j < node.head; j++) assert(node.keys[j] === undefined, 'slots before head are empty');
      if (node.children === null) {
        assert(leafDepth === -1 || leafDepth === depth, 'every leaf is at the same depth');
        leafDepth = depth;
        for (let j = node.head; j < node.keys.length; j++) {
          const key = node.keys[j] as SetKey;
          assert(previous === undefined || compareJobs(previous, key) < 0, 'keys strictly ascend');
          previous = key;
          seen++;
        }
        return;
      }
      assert(node.head === 0, 'inner nodes have no head');
      assert(node.children.length === node.keys.length, 'one largest key per child');
      node.children.forEach((child, j) => {
        walk(child, depth + 1, false);
        assert(node.keys[j] === maxKey(child), "an inner key is its child's largest key");
      });
    };
    walk(this.root, 0, true);
    assert(seen === this.count, 'size counts the keys');
    assert(this.root.children === null || this.root.children.length >= 2, 'an inner root has two children');
  }

  /** Inserts into the subtree of `node`; returns a new right sibling if `node` split, DUPLICATE, or null. */
  private insertInto(node: Node, key: SetKey): Node | null {
    const keys = node.keys;
    const children = node.children;
    if (children === null) {
      const i = lowerBound(keys, node.head, key);
      if (i < keys.length && compareJobs(keys[i] as SetKey, key) === 0) return DUPLICATE;
      insertInLeaf(node, i, key);
      return node.size > this.maxNode ? split(node) : null;
    }
    let i = lowerBound(keys, 0, key);
    // Above every largest key: it goes to the last child, whose largest key it becomes.
    if (i === keys.length) i--;
    const child = children[i] as Node;
    const right = this.insertInto(child, key);
    if (right === DUPLICATE) return DUPLICATE;
    keys[i] = maxKey(child);
    if (right === null) return null;
    children.splice(i + 1, 0, right);
    keys.splice(i + 1, 0, maxKey(right));
    return keys.length > this.maxNode ? split(node) : null;
  }

  private removeFrom(node: Node, key: SetKey): boolean {
    const keys = node.keys;
    const children = node.children;
    if (children === null) {
      const i = lowerBound(keys, node.head, key);
      if (i === keys.length || compareJobs(keys[i] as SetKey, key) !== 0) return false;
      removeFromLeaf(node, i);
      return true;
    }
    const i = lowerBound(keys, 0, key);
    if (i === keys.length) return false;
    const child = children[i] as Node;
    if (!this.removeFrom(child, key)) return false;
    if (child.size === 0) {
      children.splice(i, 1);
      keys.splice(i, 1);
      return true;
    }
    keys[i] = maxKey(child);
    if (child.size < this.minNode) this.mergeSmall(node, i);
    return true;
  }

  /** Merge the small child i of `node` with a neighbour when the two fit in one node. */
  private mergeSmall(node: Node, i: number): void {
    const children = node.children as Node[];
    const size = (children[i] as Node).size;
    const right = children[i + 1];
    if (right !== undefined && size + right.size <= this.maxNode) {
      mergeInto(node, i);
      return;
    }
    const left = children[i - 1];
    if (left !== undefined && left.size + size <= this.maxNode) mergeInto(node, i - 1);
  }
}

/*
 * Moving keys one by one in JS, toward whichever end of the leaf is nearer,
 * beats splice: splice allocates the array of what it removed, and shift()
 * left-trims the store so that the next push reallocates it.
 */

/** Inserts `key` at index i of a leaf (before the key now at i). */
function insertInLeaf(leaf: Node, i: number, key: SetKey): void {
  const keys = leaf.keys;
  if (leaf.head > 0 && i - leaf.head < keys.length - i) {
    const head = --leaf.head;
    for (let j = head; j < i - 1; j++) keys[j] = keys[j + 1] as SetKey;
    keys[i - 1] = key;
    return;
  }
  let j = keys.length;
  keys.push(key);
  for (; j > i; j--) keys[j] = keys[j - 1] as SetKey;
  keys[i] = key;
}

/** Removes the key at index i of a leaf. */
function removeFromLeaf(leaf: Node, i: number): void {
  const keys = leaf.keys;
  const last = keys.length - 1;
  if (i - leaf.head < last - i) {
    for (let j = i; j > leaf.head; j--) keys[j] = keys[j - 1] as SetKey;
    (keys as Array<SetKey | undefined>)[leaf.head] = undefined;
    leaf.head++;
    // Once the empty front outgrows the keys, copy them to a fresh array (young: no write barrier).
    if (leaf.head >= 16 && leaf.head * 2 >= keys.length) {
      leaf.keys = keys.slice(leaf.head);
      leaf.head = 0;
    }
    return;
  }
  for (let j = i; j < last; j++) keys[j] = keys[j + 1] as SetKey;
  keys.pop();
  // Emptied with an empty front: a fresh array, not `keys.length = 0`, which is a runtime call
  // (2.8 % of the in-memory cycle) and drops the store all the same. Emptied from index 0, the
  // array is already empty and keeps its store: a leaf that empties on every job (the in-memory
  // cycle's waiting and active leaves) no longer grows a new one each time (1.5 % of that cycle).
  if (keys.length === leaf.head && leaf.head > 0) {
    leaf.keys = [];
    leaf.head = 0;
  }
}

/** Moves the upper half of `node` into a new right sibling, which it returns. */
function split(node: Node): Node {
  const half = node.head + (node.size >>> 1);
  const right = new Node(node.keys.slice(half), node.children === null ? null : node.children.splice(half));
  node.keys = node.keys.slice(node.head, half);
  node.head = 0;
  return right;
}

/** Appends child j + 1 of `parent` to child j and drops it. */
function mergeInto(parent: Node, j: number): void {
  const children = parent.children as Node[];
  const a = children[j] as Node;
  const b = children[j + 1] as Node;
  a.keys = a.keys.slice(a.head).concat(b.keys.slice(b.head));
  a.head = 0;
  if (a.children !== null) for (const child of b.children as Node[]) a.children.push(child);
  children.splice(j + 1, 1);
  parent.keys.splice(j + 1, 1);
  parent.keys[j] = maxKey(a);
}
