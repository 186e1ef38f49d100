// Shared by bench/queue-core.ts and bench/instructions/turns.mjs (plain JavaScript, so that the
// callgrind workload can import it without tsx; types in per-turn.d.mts).

/**
 * Wraps `apply` so that its replies come once per event-loop turn, as the node's writer gives
 * them: one shared promise a turn, settled by setImmediate; each call gets `.then` on it.
 */
export function perTurn(apply) {
  let turn = null;
  let settle = () => {};
  const endTurn = () => {
    turn = null;
    settle();
  };
  return (request) => {
    const result = apply(request);
    if (turn === null) {
      turn = new Promise((resolve) => {
        settle = resolve;
      });
      setImmediate(endTurn);
    }
    return turn.then(() => result);
  };
}
