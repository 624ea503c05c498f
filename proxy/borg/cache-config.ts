// The client cache directory (BORG_PROTOCOL.md §6.2, §6.6; borg/cache.py `CacheConfig.create` / `load` /
// `save`, `LocalCache.create`, constants.py `CACHE_README`). A prepared cache whose `[cache] manifest` equals
// the id of the manifest the client will load makes `borg create` skip the cache sync entirely. The
// directory itself is written by proxy/storage/client-cache.ts; this file holds only its formats.
//
// The config is written the way Python's ConfigParser.write does (`key = value`, a blank line after each
// section). `[integrity]` carries only `manifest`: without `chunks`/`files` entries borg reads those files
// with no integrity check, whereas a wrong digest would make the run fail (§6.2).
import { BorgFormatError } from './errors.js';

export const CACHE_README = 'This is a Borg Backup cache.\nSee https://borgbackup.readthedocs.io/\n';

export interface CacheConfig {
  /** The repository id `open` returns (names the cache directory). */
  readonly repositoryId: Buffer;
  /** id_hash(manifest plaintext) of the manifest the client will load. */
  readonly manifestId: Buffer;
  /** That manifest's timestamp; must not be newer than it (security check, §6.4). */
  readonly timestamp: string;
  /** Key TYPE as borg's `key.TYPE` (e.g. 3). */
  readonly keyType: number;
  /** The client's canonical location, e.g. `ssh://job-42@backup/job-42` (§1.1). */
  readonly previousLocation: string;
}

function iniValue(v: string, what: string): string {
  // ConfigParser would write a multi-line value with tab continuations; none of ours may contain a newline.
  if (/[\r\n]/.test(v)) throw new BorgFormatError(`cache config ${what} contains a newline`, 'cache-config');
  return v;
}

/** The `config` ini exactly as borg 1.2.4 writes it after a commit, minus the chunks/files digests. */
export function renderCacheConfig(c: CacheConfig): string {
  if (c.repositoryId.length !== 32 || c.manifestId.length !== 32) throw new RangeError('ids must be 32 bytes');
  if (!Number.isInteger(c.keyType) || c.keyType < 0 || c.keyType > 255) throw new RangeError('keyType must be a key TYPE byte');
  const manifest = c.manifestId.toString('hex');
  return [
    '[cache]',
    'version = 1',
    `repository = ${c.repositoryId.toString('hex')}`,
    `manifest = ${manifest}`,
    `previous_location = ${iniValue(c.previousLocation, 'previous_location')}`,
    `timestamp = ${iniValue(c.timestamp, 'timestamp')}`,
    'ignored_features = ',
    'mandatory_features = ',
    `key_type = ${c.keyType}`,
    '',
    '[integrity]',
    `manifest = ${manifest}`,
    '',
    '',
  ].join('\n');
}

/** Reads the fields BorgCube cares about back from a cache `config` (tests, diagnostics). */
export function parseCacheConfig(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec?.[1]) {
      section = out[sec[1]] = {};
      continue;
    }
    const kv = /^([^=\s][^=]*?)\s*=\s?(.*)$/.exec(line);
    if (kv?.[1] !== undefined && section) section[kv[1]] = kv[2] ?? '';
  }
  return out;
}
