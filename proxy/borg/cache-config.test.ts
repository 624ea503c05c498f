import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCacheConfig, renderCacheConfig } from './cache-config.js';
import { packFilesCacheEntry, readFilesCache, writeFilesCache } from './files-cache.js';
import { ChunkIndex } from './hashindex.js';
import { TESTDATA, expectedCacheIndex, loadExpect } from './test-fixtures.js';

const cacheFile = (dir: string, name: string): Buffer => readFileSync(join(TESTDATA, 'cache', dir, name));
const e = loadExpect('repokey');
const expectedIndex = (archiveIds?: string[]): ChunkIndex => expectedCacheIndex(e, archiveIds);

const entries = (idx: ChunkIndex): Map<string, unknown> => new Map([...idx].map(([k, v]) => [k.toString('hex'), v]));

describe('client cache written by borg 1.2.4', () => {
  it('chunks holds every archive object, items chunk and data chunk with refcounts and sizes', () => {
    const want = entries(expectedIndex());
    expect(entries(ChunkIndex.parse(cacheFile('repokey', 'chunks')))).toEqual(want);
    expect(entries(ChunkIndex.parse(cacheFile('repokey-synced', 'chunks')))).toEqual(want);
  });
  it('per-archive compact indexes hold each archive\'s chunks, and merge into the master index', () => {
    const dir = join(TESTDATA, 'cache', 'repokey-synced', 'chunks.archive.d');
    const merged = new ChunkIndex();
    const files = readdirSync(dir);
    expect(files.length).toBe(Object.keys(e.archives).length);
    for (const f of files) {
      const idx = ChunkIndex.parse(readFileSync(join(dir, f)), { permitCompact: true });
      expect(entries(idx)).toEqual(entries(expectedIndex([f.slice(0, 64)])));
      merged.merge(idx);
    }
    expect(entries(merged)).toEqual(entries(expectedIndex()));
  });
  it('files cache: every record parses, references known chunks, and re-packs to the same bytes', () => {
    const file = cacheFile('repokey', 'files');
    const chunks = ChunkIndex.parse(cacheFile('repokey', 'chunks'));
    const list = [...readFilesCache([file.subarray(0, 1000), file.subarray(1000)])];
    expect(list.length).toBeGreaterThan(3900); // borg drops files newer than the newest cmtime seen
    for (const ent of list) {
      expect(ent.age).toBeLessThan(20);
      for (const c of ent.chunkIds) expect(chunks.has(c)).toBe(true);
      expect(ent.cmtimeNs).toBeGreaterThan(1_700_000_000_000_000_000n);
    }
    expect(writeFilesCache(list).equals(file)).toBe(true);
  });
  it('files cache: cmtime beyond 63 bits uses int_to_bigint bytes; truncation and bad records are refused', () => {
    const big = { pathHash: Buffer.alloc(32, 1), age: 0, inode: 5n, size: 0n, cmtimeNs: 2n ** 64n + 5n, chunkIds: [] };
    const packed = packFilesCacheEntry(big);
    expect(packed.includes(Buffer.from('a9050000000000000001', 'hex'))).toBe(true); // 9 bytes LE signed
    expect([...readFilesCache([packed])]).toEqual([big]);
    expect(() => [...readFilesCache([packed.subarray(0, 10)])]).toThrow(/ends inside/);
    expect(() => [...readFilesCache([Buffer.from('92a10190', 'hex')])]).toThrow();
  });
  it('config is rendered exactly like borg\'s, minus the chunks/files integrity digests', () => {
    const borgText = cacheFile('repokey', 'config').toString();
    const c = parseCacheConfig(borgText).cache ?? {};
    const ours = renderCacheConfig({
      repositoryId: Buffer.from(c.repository ?? '', 'hex'),
      manifestId: Buffer.from(c.manifest ?? '', 'hex'),
      timestamp: c.timestamp ?? '',
      keyType: Number(c.key_type),
      previousLocation: c.previous_location ?? '',
    });
    expect(ours).toBe(borgText.replace(/^(chunks|files) = .*\n/gm, ''));
    expect(c.manifest).toBe(e.manifest.id);
    expect(() => renderCacheConfig({ repositoryId: Buffer.alloc(32), manifestId: Buffer.alloc(32), timestamp: 'x\ny', keyType: 3, previousLocation: '' })).toThrow(/newline/);
  });
});
