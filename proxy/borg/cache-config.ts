// The client cache directory (BORG_PROTOCOL.md §6.2, §6.6; borg/cache.py `CacheConfig.create` / `load` /
// `save`, `LocalCache.create`, constants.py `CACHE_README`). A prepared cache whose `[cache] manifest` equals
// the id of the manifest the client will load makes `borg create` skip the cache sync entirely.
//
// The config is written the way Python's ConfigParser.write does (`key = value`, a blank line after each
// section). `[integrity]` carries only `manifest`: without `chunks`/`files` entries borg reads those files
// with no integrity check, whereas a wrong digest would make the run fail (§6.2).
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BorgFormatError } from './errors.js';
import type { ChunkIndex } from './hashindex.js';

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

export interface ClientCacheInput extends CacheConfig {
  /**
   * The master chunks index: every chunk, items chunk and archive object the listed archives
   * reference; or that index already serialized (ChunkIndex.serialize).
   */
  readonly chunks: ChunkIndex | Buffer;
  /** A files cache file (see files-cache.ts); empty if omitted. */
  readonly files?: Buffer;
  /** Per-archive indexes written as chunks.archive.d/<archive id hex>.compact (seeded sync, §6.5). */
  readonly archiveIndexes?: ReadonlyMap<string, ChunkIndex>;
}

/**
 * Writes `<cacheBase>/<repo id hex>/` (README, config, chunks, files, pre12-meta, chunks.archive.d/) as
 * `LocalCache.create` + `commit` would leave it, and returns that directory. Files are written to a temporary
 * name and renamed, `config` last, so borg never sees a config pointing at half-written data.
 */
export async function writeClientCache(cacheBase: string, c: ClientCacheInput): Promise<string> {
  const dir = join(cacheBase, c.repositoryId.toString('hex'));
  await mkdir(join(dir, 'chunks.archive.d'), { recursive: true, mode: 0o700 });
  const put = async (name: string, data: string | Buffer): Promise<void> => {
    const tmp = join(dir, `${name}.tmp`);
    await writeFile(tmp, data, { mode: 0o600 });
    await rename(tmp, join(dir, name));
  };
  await put('README', CACHE_README);
  await put('chunks', Buffer.isBuffer(c.chunks) ? c.chunks : c.chunks.serialize());
  await put('files', c.files ?? Buffer.alloc(0));
  await put('pre12-meta', '{}'); // json.dump({}, fd, indent=4)
  for (const [archiveIdHex, idx] of c.archiveIndexes ?? []) {
    if (!/^[0-9a-f]{64}$/.test(archiveIdHex)) throw new RangeError('archive index names are 64 lowercase hex digits');
    const tmp = join(dir, 'chunks.archive.d', `${archiveIdHex}.tmp`);
    await writeFile(tmp, idx.serializeCompact(), { mode: 0o600 });
    await rename(tmp, join(dir, 'chunks.archive.d', `${archiveIdHex}.compact`));
  }
  await put('config', renderCacheConfig(c));
  return dir;
}
