import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CACHE_README, parseCacheConfig, renderCacheConfig, writeClientCache } from './cache-config.js';
import { packFilesCacheEntry, readFilesCache, writeFilesCache } from './files-cache.js';
import { ChunkIndex } from './hashindex.js';
import { HAVE_BORG, TESTDATA, loadExpect, repoDir } from './test-fixtures.js';
import { tempDir } from '../../test/harness/temp-dir.js';

const cacheFile = (dir: string, name: string): Buffer => readFileSync(join(TESTDATA, 'cache', dir, name));
const e = loadExpect('repokey');
const objSize = new Map(e.objects.map((o) => [o.id, o]));

/** The chunks index borg should hold for the repokey fixture, derived from what borg reported (expect.json). */
function expectedIndex(archiveIds?: string[]): ChunkIndex {
  const idx = new ChunkIndex();
  const add = (id: string): void => {
    const o = objSize.get(id);
    if (!o) throw new Error(`unknown object ${id}`);
    idx.add(Buffer.from(id, 'hex'), 1, o.plainLen, o.size);
  };
  for (const a of Object.values(e.archives)) {
    if (archiveIds && !archiveIds.includes(a.id)) continue;
    add(a.id);
    for (const i of a.items) add(i);
    for (const r of a.refs) add(r);
  }
  return idx;
}

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

describe.runIf(HAVE_BORG)('borg 1.2.4 uses a cache directory written here', () => {
  async function borgInfo(seed: 'exact' | 'compact'): Promise<{ stdout: string; stderr: string; cacheDir: string }> {
    const tmp = tempDir('borgcache');
    const repo = join(tmp, 'repo');
    cpSync(repoDir('repokey'), repo, { recursive: true });
    const dir = join(tmp, 'home', '.cache', 'borg');
    const archiveIndexes = new Map(Object.values(e.archives).map((a) => [a.id, expectedIndex([a.id])]));
    const cacheDir = await writeClientCache(dir, {
      repositoryId: Buffer.from(e.repositoryId, 'hex'),
      manifestId: seed === 'exact' ? Buffer.from(e.manifest.id, 'hex') : Buffer.alloc(32, 0xee),
      timestamp: e.manifest.timestamp,
      keyType: 3,
      previousLocation: repo,
      chunks: seed === 'exact' ? expectedIndex() : new ChunkIndex(),
      files: cacheFile('repokey', 'files'),
      ...(seed === 'compact' ? { archiveIndexes } : {}),
    });
    const r = spawnSync('borg', ['--debug', 'info', repo], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', BORG_BASE_DIR: join(tmp, 'home'), BORG_PASSPHRASE: 'test', LANG: 'C.UTF-8' },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    return { stdout: r.stdout, stderr: r.stderr, cacheDir };
  }
  const statsLines = (s: string): string[] => s.split('\n').filter((l) => /^(All archives|Chunk index):/.test(l));
  const borgStats = statsLines(readFileSync(join(TESTDATA, 'cache', 'borg-info.txt'), 'utf8'));

  it('exact manifest id: no sync at all, statistics computed from our chunks file match borg\'s own', async () => {
    const r = await borgInfo('exact');
    expect(statsLines(r.stdout)).toEqual(borgStats);
    expect(r.stderr).not.toMatch(/Synchronizing chunks cache/);
    expect(readFileSync(join(r.cacheDir, 'README'), 'utf8')).toBe(CACHE_README);
  });
  it('seeded compact per-archive indexes: borg syncs from them without fetching any archive', async () => {
    const r = await borgInfo('compact');
    expect(r.stderr).toMatch(/Synchronizing chunks cache/);
    expect(r.stderr).toMatch(/Reading cached archive chunk index/);
    expect(r.stderr).not.toMatch(/Fetching and building archive index/);
    expect(statsLines(r.stdout)).toEqual(borgStats);
    // and the master index borg rebuilt from our compact files is exactly the expected one
    expect(entries(ChunkIndex.parse(readFileSync(join(r.cacheDir, 'chunks'))))).toEqual(entries(expectedIndex()));
  });
});
