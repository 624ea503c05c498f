// borg 1.2.4 itself loads a cache directory written by writeClientCache (skipped without borg).
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CACHE_README } from '../borg/cache-config.js';
import { ChunkIndex } from '../borg/hashindex.js';
import { HAVE_BORG, TESTDATA, expectedCacheIndex, loadExpect, repoDir } from '../borg/test-fixtures.js';
import { tempDir } from '../../test/harness/temp-dir.js';
import { writeClientCache } from './client-cache.js';

const cacheFile = (dir: string, name: string): Buffer => readFileSync(join(TESTDATA, 'cache', dir, name));
const e = loadExpect('repokey');
const expectedIndex = (archiveIds?: string[]): ChunkIndex => expectedCacheIndex(e, archiveIds);
const entries = (idx: ChunkIndex): Map<string, unknown> => new Map([...idx].map(([k, v]) => [k.toString('hex'), v]));

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
