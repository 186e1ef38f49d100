/**
 * INFO persistence: the AOF engine's state under Redis's field names and with
 * Redis's meanings, plus aofq's own LSN fields, and Redis's text form of an
 * INFO section. The rewrite fields come from the engine's rewrite state
 * (idle values when a caller gives none).
 */
import { assert } from '../util/assert.js';

export type InfoFields = Record<string, string | number>;

export interface PersistenceState {
  loading: boolean;
  aofEnabled: boolean;
  lastWriteStatus: 'ok' | 'err';
  /** Bytes of every file the manifest lists (base and incr). */
  currentSize: number;
  /** Bytes of the base file at the last load or rewrite. */
  baseSize: number;
  /** Bytes appended but not yet handed to write(). */
  bufferLength: number;
  /** 1 while a background fdatasync runs. */
  pendingBioFsync: number;
  delayedFsync: number;
  lastLsn: number;
  writtenLsn: number;
  fsyncedLsn: number;
  lastFsyncLatencyUs: number;
  rewrite?: RewriteInfoState;
}

/** The rewrite's part of INFO persistence. */
export interface RewriteInfoState {
  inProgress: boolean;
  scheduled: boolean;
  /** Seconds the last rewrite took, -1 before the first. */
  lastTimeSec: number;
  /** Seconds the running rewrite has taken so far, -1 when none runs. */
  currentTimeSec: number;
  lastStatus: 'ok' | 'err';
  /** Rewrites started since the start. */
  rewrites: number;
  consecutiveFailures: number;
}

/** The `# Persistence` fields, in Redis's order, then aofq's. */
export function persistenceInfo(s: PersistenceState): InfoFields {
  const r = s.rewrite;
  const fields: InfoFields = {
    loading: s.loading ? 1 : 0,
    aof_enabled: s.aofEnabled ? 1 : 0,
    aof_rewrite_in_progress: r?.inProgress ? 1 : 0,
    aof_rewrite_scheduled: r?.scheduled ? 1 : 0,
    aof_last_rewrite_time_sec: r?.lastTimeSec ?? -1,
    aof_current_rewrite_time_sec: r?.currentTimeSec ?? -1,
    aof_last_bgrewrite_status: r?.lastStatus ?? 'ok',
    aof_rewrites: r?.rewrites ?? 0,
    aof_rewrites_consecutive_failures: r?.consecutiveFailures ?? 0,
    aof_last_write_status: s.lastWriteStatus,
    aof_last_cow_size: 0,
  };
  if (s.aofEnabled) {
    // Redis prints these only while the AOF is on.
    fields.aof_current_size = s.currentSize;
    fields.aof_base_size = s.baseSize;
    fields.aof_pending_rewrite = r?.scheduled ? 1 : 0;
    fields.aof_buffer_length = s.bufferLength;
    fields.aof_pending_bio_fsync = s.pendingBioFsync;
    fields.aof_delayed_fsync = s.delayedFsync;
  }
  fields.aof_last_lsn = s.lastLsn;
  fields.aof_written_lsn = s.writtenLsn;
  fields.aof_fsynced_lsn = s.fsyncedLsn;
  fields.aof_last_fsync_latency_us = s.lastFsyncLatencyUs;
  return fields;
}

const SECTION_NAME_RE = /^[A-Za-z][A-Za-z0-9_ ]{0,63}$/;
const FIELD_NAME_RE = /^[a-z0-9_]{1,128}$/;

/** Redis's INFO text: `# Name\r\nkey:value\r\n...`. Values hold no CR or LF. */
export function formatInfoSection(name: string, fields: InfoFields): string {
  assert(SECTION_NAME_RE.test(name), `INFO section name: ${name}`);
  let out = `# ${name}\r\n`;
  for (const [key, value] of Object.entries(fields)) {
    assert(FIELD_NAME_RE.test(key), `INFO field name: ${key}`);
    const text = String(value);
    assert(!/[\r\n]/.test(text), `INFO value of ${key} holds CR or LF`);
    out += `${key}:${text}\r\n`;
  }
  return out;
}
