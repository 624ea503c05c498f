// `npm run bench:catalog [FILES]`: the archive catalog's index at the size issue 20 names — a
// synthetic archive of a million files (1000 directories of 1000, plus a deep tree) built into an
// index as the repository service builds it (bounded memory: runs spilled and merged), then
// directory pages at random offsets (from the index, and through the repository service's control
// socket as the console and the API ask), a stat and two searches. Target: a page < 500 ms after
// the first open. No borg, no repository: reading the items for the first open is the service's part.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../infra/logger.js';
import { catalogIndexPath } from '../infra/storage-layout.js';
import { catalogList } from '../proxy/storage/catalog-client.js';
import { Catalog } from '../proxy/storage/catalog/catalog.js';
import { serveControl } from '../proxy/storage/control.js';
import { S_IFDIR, S_IFREG, type ArchiveItem } from '../proxy/borg/item.js';
import { pathMatcher } from '../proxy/storage/catalog/glob.js';
import { buildIndex } from '../proxy/storage/catalog/index-build.js';
import { CatalogIndex } from '../proxy/storage/catalog/index-file.js';
import { tempDir } from '../test/harness/temp-dir.js';
import { runBench } from './lib/run-bench.js';

const files = Number(process.argv[2] ?? 1_000_000);
const perDir = 1000;
const item = (path: string, mode: number, size = 0): ArchiveItem => ({ path: Buffer.from(path), mode, uid: 1000, gid: 1000, user: Buffer.from('user'), group: Buffer.from('users'), mtime: 1_700_000_000_000_000_000n, hardlinkMaster: false, size });

async function* items(): AsyncGenerator<ArchiveItem> {
  yield item('srv/data', S_IFDIR | 0o755);
  for (let d = 0; d * perDir < files; d++) {
    yield item(`srv/data/dir-${d}`, S_IFDIR | 0o755);
    for (let f = 0; f < perDir && d * perDir + f < files; f++) yield await Promise.resolve(item(`srv/data/dir-${d}/file-${f}.dat`, S_IFREG | 0o644, f * 17));
  }
}

const ms = (t0: number) => performance.now() - t0;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

runBench('bench:catalog', async () => {
  // Where the repository service keeps the index of this (made-up) archive, so that the same
  // index also answers through the service's control socket below.
  const storageDir = tempDir('bench-catalog');
  const ref = { repositoryId: randomUUID(), archiveId: randomBytes(32).toString('hex') };
  const path = catalogIndexPath({ paths: { storageDir } }, ref.repositoryId, ref.archiveId);
  mkdirSync(dirname(path), { recursive: true });
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  const stats = await buildIndex(items(), path);
  clearInterval(sampler);
  console.log(`build: ${stats.entries.toLocaleString('en')} entries, ${(stats.bytes / 2 ** 20).toFixed(0)} MiB index, ${(ms(t0) / 1000).toFixed(1)} s, RSS +${((peak - rss0) / 2 ** 20).toFixed(0)} MiB`);
  const idx = CatalogIndex.open(path);
  const dirs = Math.ceil(files / perDir);
  const pages: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    const page = idx.list(Buffer.from(`srv/data/dir-${Math.floor(Math.random() * dirs)}`), Math.floor(Math.random() * 900), 100);
    pages.push(ms(t));
    if (!page.entries.length) throw new Error('empty page');
  }
  const t1 = performance.now();
  const top = idx.list(Buffer.from('srv/data'), 0, 200);
  const topMs = ms(t1);
  console.log(`directory pages of 100: p50 ${pct(pages, 50).toFixed(2)} ms, p99 ${pct(pages, 99).toFixed(2)} ms; the ${top.total}-entry top directory's first 200 in ${topMs.toFixed(2)} ms (target < 500 ms)`);
  const t2 = performance.now();
  idx.stat(Buffer.from(`srv/data/dir-${dirs - 1}/file-1.dat`));
  console.log(`stat: ${ms(t2).toFixed(2)} ms`);
  for (const pattern of ['**/dir-7/file-99?.dat', 'file-123456']) {
    const t = performance.now();
    const r = await idx.find(pathMatcher(pattern), 1000);
    console.log(`find ${pattern}: ${r.entries.length} matches in ${(ms(t) / 1000).toFixed(2)} s (a full scan)`);
  }
  idx.close();

  // The same pages as the console and the API get them: a request on the repository service's
  // control socket, the index opened (not built again: it exists) and the page sent back framed.
  const log = createLogger({ name: 'bench', level: 'silent' });
  const catalog = new Catalog({ config: { paths: { storageDir } }, log, repository: () => Promise.reject(new Error('the index exists: no repository is read')) });
  const socket = join(storageDir, 'control.sock');
  const server = createServer((sock) => serveControl(sock, { log, repository: () => Promise.reject(new Error('unused')), catalog }));
  await new Promise<void>((r) => server.listen(socket, r));
  const viaSocket: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      const page = await catalogList(socket, ref, Buffer.from(`srv/data/dir-${Math.floor(Math.random() * dirs)}`), Math.floor(Math.random() * 900), 100);
      viaSocket.push(ms(t));
      if (!page.entries.length) throw new Error('empty page');
    }
  } finally {
    server.close();
  }
  console.log(`directory pages of 100 through the repository service's control socket: p50 ${pct(viaSocket, 50).toFixed(2)} ms, p99 ${pct(viaSocket, 99).toFixed(2)} ms (target < 500 ms)`);
  if (pct(pages, 99) > 500 || topMs > 500 || pct(viaSocket, 99) > 500) throw new Error('a directory page took longer than 500 ms');
});
