// A client's Borg cache directory, prepared by the server (BORG_PROTOCOL.md §6.6; borg/cache.py
// `LocalCache.create` + `commit`): with it, stock `borg create` skips the cache sync entirely. The
// formats are proxy/borg's (cache-config.ts, hashindex.ts, files-cache.ts); this writes the files.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CACHE_README, renderCacheConfig, type CacheConfig } from '../borg/cache-config.js';
import type { ChunkIndex } from '../borg/hashindex.js';

export interface ClientCacheInput extends CacheConfig {
  /**
   * The master chunks index: every chunk, items chunk and archive object the listed archives
   * reference; or that index already serialized (ChunkIndex.serialize).
   */
  readonly chunks: ChunkIndex | Buffer;
  /** A files cache file (see files-cache.ts), or a file holding one to move in; empty if omitted. */
  readonly files?: Buffer | { readonly path: string };
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
  if (c.files && !Buffer.isBuffer(c.files)) await rename(c.files.path, join(dir, 'files'));
  else await put('files', c.files ?? Buffer.alloc(0));
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
