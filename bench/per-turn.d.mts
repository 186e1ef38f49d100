/** See per-turn.mjs: replies to `apply`'s requests once per event-loop turn. */
export function perTurn<Q, R>(apply: (request: Q) => R): (request: Q) => Promise<R>;
