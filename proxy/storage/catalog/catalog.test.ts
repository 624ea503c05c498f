import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../infra/logger.js';
import { catalogDir, catalogIndexPath } from '../../../infra/storage-layout.js';
import { S_IFDIR, S_IFREG, type ArchiveItem } from '../../borg/item.js';
import { Catalog, evictIndexes } from './catalog.js';
import { buildIndex } from './index-build.js';

const storageDir = mkdtempSync(join(tmpdir(), 'catalog-'));
afterAll(() => rmSync(storageDir, { recursive: true, force: true }));
const config = { paths: { storageDir } };
const log = createLogger({ name: 'test', level: 'silent' });

const item = (path: string, mode: number, size?: number): ArchiveItem => ({ path: Buffer.from(path), mode, uid: 0, gid: 0, user: null, group: null, mtime: 0n, hardlinkMaster: false, ...(size === undefined ? {} : { size }) });
async function* items(n: number) {
  yield await Promise.resolve(item('d', S_IFDIR | 0o755));
  for (let i = 0; i < n; i++) yield item(`d/f${i}`, S_IFREG | 0o644, i);
}

/** An index as the catalog builds it, last used `usedSecondsAgo` ago. */
async function index(repositoryId: string, hex: string, files: number, usedSecondsAgo: number): Promise<string> {
  const path = catalogIndexPath(config, repositoryId, hex);
  mkdirSync(join(catalogDir(config), repositoryId), { recursive: true });
  await buildIndex(items(files), path);
  const t = new Date(Date.now() - usedSecondsAgo * 1000);
  utimesSync(path, t, t);
  return path;
}

describe("the catalog's indexes on disk", () => {
  // Every index here exists already: a call that would build one (and so read the repository) fails.
  const catalog = new Catalog({ config, log, repository: (id) => Promise.reject(new Error(`the test has no repository ${id}`)) });

  it('opens an index built before without reading the repository again, and marks it used', async () => {
    const path = await index('r0', 'aa'.repeat(32), 10, 3600);
    const before = statSync(path).mtimeMs;
    const idx = await catalog.index('r0', 'aa'.repeat(32));
    try {
      expect(idx.list(Buffer.from('d'), 0, 100).total).toBe(10);
    } finally {
      idx.close();
    }
    expect(statSync(path).mtimeMs).toBeGreaterThan(before + 3_000_000);
  });

  it("drops the indexes of archives gone from the repository's manifest, and only that repository's", async () => {
    const gone = await index('r1', '01'.repeat(32), 5, 30);
    const live = await index('r1', '02'.repeat(32), 5, 20);
    const other = await index('r2', '01'.repeat(32), 5, 10);
    writeFileSync(join(catalogDir(config), 'r1', 'notes.txt'), 'not an index');
    catalog.dropGone('r1', new Set(['02'.repeat(32)]));
    expect([existsSync(gone), existsSync(live), existsSync(other)]).toEqual([false, true, true]);
    expect(existsSync(join(catalogDir(config), 'r1', 'notes.txt'))).toBe(true);
  });

  it('keeps all indexes within their budget, the least recently used going first and the new one staying', () => {
    const root = join(storageDir, 'budget');
    const at = (hex: string) => join(root, 'r', `${hex}.idx`);
    mkdirSync(join(root, 'r'), { recursive: true });
    const make = (hex: string, bytes: number, usedSecondsAgo: number) => {
      writeFileSync(at(hex), Buffer.alloc(bytes));
      const t = new Date(Date.now() - usedSecondsAgo * 1000);
      utimesSync(at(hex), t, t);
    };
    make('old', 1000, 300);
    make('mid', 1000, 200);
    make('new', 1000, 100);
    evictIndexes(root, 3000, at('new'), log);
    expect(['old', 'mid', 'new'].map((h) => existsSync(at(h)))).toEqual([true, true, true]);
    evictIndexes(root, 2500, at('new'), log);
    expect(['old', 'mid', 'new'].map((h) => existsSync(at(h)))).toEqual([false, true, true]);
    // The index just built stays even when it alone is over the budget.
    make('huge', 5000, 0);
    evictIndexes(root, 1000, at('huge'), log);
    expect(['mid', 'new', 'huge'].map((h) => existsSync(at(h)))).toEqual([false, false, true]);
  });

  it('removes builds a stopped service left half done when it starts', () => {
    const half = join(catalogDir(config), 'r1', `${'03'.repeat(32)}.idx.build-1234`);
    mkdirSync(half, { recursive: true });
    new Catalog({ config, log, repository: () => Promise.reject(new Error('unused')) });
    expect(existsSync(half)).toBe(false);
  });
});
