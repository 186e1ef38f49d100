/**
 * Bearer-token authentication and role checks for the HTTP API. Secrets are
 * compared in constant time: both sides are hashed to fixed-length SHA-256
 * digests and compared with crypto.timingSafeEqual, and every configured token
 * is compared on every request, so the time taken says nothing about which
 * token (or how much of one) matched.
 *
 * Roles: `producer` enqueues, `consumer` leases, acks, nacks, extends,
 * releases, sets progress and reads; `admin` may do everything; `replica` is
 * for the replication stream and may do nothing here. Producers may also read
 * (a producer checking on its job is common).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { AofqError } from '../errors/index.js';

export type Role = 'producer' | 'consumer' | 'admin' | 'replica';
/** What an operation needs: `read` is granted to producer, consumer and admin. */
export type Permission = 'producer' | 'consumer' | 'admin' | 'read' | 'public';

export interface TokenEntry {
  readonly name: string;
  readonly role: Role;
  readonly secret: string;
}

export interface Principal {
  readonly name: string;
  readonly role: Role;
}

const ANONYMOUS_ADMIN: Principal = Object.freeze({ name: 'anonymous', role: 'admin' });
/** Longest Authorization header we hash; longer ones are refused outright. */
const MAX_AUTHORIZATION_BYTES = 4096;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function allows(role: Role, permission: Permission): boolean {
  switch (permission) {
    case 'public':
      return true;
    case 'admin':
      return role === 'admin';
    case 'producer':
      return role === 'producer' || role === 'admin';
    case 'consumer':
      return role === 'consumer' || role === 'admin';
    case 'read':
      return role === 'consumer' || role === 'producer' || role === 'admin';
  }
}

export class Authenticator {
  private readonly entries: ReadonlyArray<{ principal: Principal; digest: Buffer }>;

  constructor(tokens: readonly TokenEntry[]) {
    this.entries = tokens.map((token) => ({
      principal: Object.freeze({ name: token.name, role: token.role }),
      digest: digest(token.secret),
    }));
  }

  /** With no token configured the API is open (the config refuses that off loopback). */
  get open(): boolean {
    return this.entries.length === 0;
  }

  /** The principal for an Authorization header value. Throws AOFQ_ERR_AUTH_MISSING / _INVALID. */
  authenticate(header: string | undefined): Principal {
    if (this.open) return ANONYMOUS_ADMIN;
    if (header === undefined || header === '') throw new AofqError('AOFQ_ERR_AUTH_MISSING');
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!match || header.length > MAX_AUTHORIZATION_BYTES) throw new AofqError('AOFQ_ERR_AUTH_INVALID');
    const found = this.principalOf(match[1] as string);
    if (found === null) throw new AofqError('AOFQ_ERR_AUTH_INVALID');
    return found;
  }

  /** The principal whose secret this is, or null; compared with every token in constant time. */
  principalOf(secret: string): Principal | null {
    if (secret.length > MAX_AUTHORIZATION_BYTES) return null;
    const presented = digest(secret);
    let found: Principal | null = null;
    // Compare with every entry, without stopping early.
    for (const entry of this.entries) {
      if (timingSafeEqual(presented, entry.digest) && found === null) found = entry.principal;
    }
    return found;
  }

  /** Authenticate and check the permission; throws AOFQ_ERR_AUTH_FORBIDDEN on a wrong role. */
  authorize(header: string | undefined, permission: Permission, action: string): Principal {
    if (permission === 'public') return ANONYMOUS_ADMIN;
    const principal = this.authenticate(header);
    if (!allows(principal.role, permission)) throw new AofqError('AOFQ_ERR_AUTH_FORBIDDEN', { action });
    return principal;
  }
}
