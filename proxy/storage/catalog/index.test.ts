import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { S_IFDIR, S_IFLNK, S_IFREG, type ArchiveItem } from '../../borg/item.js';
import { pathMatcher } from './glob.js';
import { buildIndex } from './index-build.js';
import { CatalogIndex, CorruptIndexError } from './index-file.js';

const dir = mkdtempSync(join(tmpdir(), 'catalog-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const item = (path: string | Buffer, mode: number, extra: Partial<ArchiveItem> = {}): ArchiveItem => ({
  path: typeof path === 'string' ? Buffer.from(path) : path,
  mode,
  uid: 1000,
  gid: 100,
  user: Buffer.from('alice'),
  group: Buffer.from('users'),
  mtime: 1_700_000_000_000_000_000n,
  hardlinkMaster: false,
  ...extra,
});

async function* gen<T>(xs: Iterable<T>) {
  for (const x of xs) yield await Promise.resolve(x);
}

const odd = Buffer.concat([Buffer.from('home/alice/'), Buffer.from([0xe9, 0x0a])]);
const items: ArchiveItem[] = [
  item('home/alice', S_IFDIR | 0o750),
  item('home/alice/b.txt', S_IFREG | 0o644, { size: 5 }),
  item('home/alice/a.txt', S_IFREG | 0o600, { size: 3, hardlinkMaster: true }),
  item('home/alice/docs', S_IFDIR | 0o755),
  item('home/alice/docs/report.pdf', S_IFREG | 0o644, { size: 1000 }),
  item('home/alice/link', S_IFLNK | 0o777, { source: Buffer.from('docs/report.pdf') }),
  item('home/alice/hard', S_IFREG | 0o644, { source: Buffer.from('home/alice/a.txt') }),
  item(odd, S_IFREG | 0o644, { size: 1 }),
  item('home/alice/part.tmp', S_IFREG | 0o644, { size: 1, part: 1 }),
];

describe('the catalog index', () => {
  const path = join(dir, 'small.idx');

  it('lists directories sorted by name, with implicit ancestors and metadata', async () => {
    const stats = await buildIndex(gen(items), path, { runBytes: 300 });
    expect(stats.entries).toBe(9);
    const idx = CatalogIndex.open(path);
    expect(idx.list(Buffer.from(''), 0, 10).entries.map((e) => e.name.toString())).toEqual(['home']);
    expect(idx.stat(Buffer.from('home'))?.implicit).toBe(true);
    const page = idx.list(Buffer.from('home/alice'), 0, 100);
    expect(page.total).toBe(6);
    expect(page.entries.map((e) => e.name.toString('latin1'))).toEqual(['a.txt', 'b.txt', 'docs', 'hard', 'link', '\xe9\n']);
    const a = page.entries[0]!;
    expect([a.type, a.size, a.mode & 0o7777, a.user?.toString(), a.group?.toString(), a.mtime]).toEqual(['file', 3, 0o600, 'alice', 'users', 1_700_000_000_000_000_000n]);
    expect([page.entries[3]!.type, page.entries[3]!.size]).toEqual(['hardlink', 3]);
    expect(page.entries[4]!.target?.toString()).toBe('docs/report.pdf');
    expect(idx.list(Buffer.from('home/alice'), 2, 2).entries.map((e) => e.name.toString())).toEqual(['docs', 'hard']);
    expect(idx.stat(Buffer.from('home/alice'))?.implicit).toBe(false);
    expect(idx.stat(odd)?.size).toBe(1);
    expect(idx.stat(Buffer.from('home/alice/part.tmp'))).toBeUndefined();
    expect(idx.stat(Buffer.from('nope'))).toBeUndefined();
    idx.close();
  });

  it('finds by glob and substring, bounded', async () => {
    const idx = CatalogIndex.open(path);
    const names = async (p: string, limit = 10) => (await idx.find(pathMatcher(p), limit)).entries.map((e) => e.name.toString('latin1'));
    expect(await names('*.txt')).toEqual(['a.txt', 'b.txt']);
    expect(await names('home/*/docs/*')).toEqual(['report.pdf']);
    expect(await names('home/**/*.pdf')).toEqual(['report.pdf']);
    expect(await names('**/a.txt')).toEqual(['a.txt']);
    expect(await names('REPORT')).toEqual(['report.pdf']);
    expect(await names('?.txt')).toEqual(['a.txt', 'b.txt']);
    const r = await idx.find(pathMatcher('alice'), 2);
    expect(r.truncated).toBe(true);
    expect(r.entries).toHaveLength(2);
    idx.close();
  });

  it('refuses a truncated or foreign file', () => {
    const bad = join(dir, 'bad.idx');
    writeFileSync(bad, 'not an index at all, certainly not one of ours.................................');
    expect(() => CatalogIndex.open(bad)).toThrow(CorruptIndexError);
    truncateSync(path, 200);
    expect(() => CatalogIndex.open(path)).toThrow(CorruptIndexError);
  });

  it('builds a million entries in bounded memory and answers a page in well under 500 ms', async () => {
    const big = join(dir, 'big.idx');
    const before = process.memoryUsage().rss;
    let peak = before;
    // Sampled inside the item stream: the build never leaves the microtask queue for a timer.
    async function* many() {
      yield item('data', S_IFDIR | 0o755);
      for (let d = 0; d < 1000; d++) {
        peak = Math.max(peak, process.memoryUsage().rss);
        yield item(`data/d${d}`, S_IFDIR | 0o755);
        for (let f = 0; f < 1000; f++) yield await Promise.resolve(item(`data/d${d}/file-${f}.bin`, S_IFREG | 0o644, { size: f }));
      }
    }
    const t0 = Date.now();
    const stats = await buildIndex(many(), big);
    expect(stats.entries).toBe(1 + 1000 + 1_000_000);
    expect(peak - before).toBeLessThan(400 * 1024 * 1024);
    const idx = CatalogIndex.open(big);
    const t1 = performance.now();
    const page = idx.list(Buffer.from('data/d777'), 500, 100);
    const ms = performance.now() - t1;
    expect(page.total).toBe(1000);
    expect(page.entries).toHaveLength(100);
    expect(ms).toBeLessThan(500);
    console.log(`catalog: 1,001,001 entries built in ${Date.now() - t0} ms, rss +${Math.round((peak - before) / 2 ** 20)} MiB, a page in ${ms.toFixed(1)} ms`);
    idx.close();
  }, 240_000);
});
