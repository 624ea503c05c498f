// The repository service's catalog: browse an archive with the real key, no client involved
// (DESIGN.md §3). Each archive's items are indexed once on the storage host (index-build.ts) and
// pages are answered from the index; the indexes share a disk budget (least recently used go
// first) and leave with their archive (dropGone, called when the repository is refreshed after
// a prune, and whenever a request names an archive that is no longer in the manifest).
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../infra/logger.js';
import { CATALOG_BUDGET_BYTES, catalogDir, catalogIndexPath, type StorageLayoutConfig } from '../../../infra/storage-layout.js';
import { openArchive, type ArchiveReader } from '../archive-items.js';
import type { RepositoryHandle } from '../repository.js';
import { buildIndex } from './index-build.js';
import { CatalogIndex, CorruptIndexError } from './index-file.js';
import type { CatalogErrorCode } from './messages.js';

export class CatalogError extends Error {
  override name = 'CatalogError';
  constructor(
    readonly code: CatalogErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface CatalogDeps {
  config: StorageLayoutConfig;
  log: Logger;
  repository(id: string): Promise<RepositoryHandle>;
  budgetBytes?: number;
}

export class Catalog {
  private readonly building = new Map<string, Promise<void>>();

  constructor(private readonly deps: CatalogDeps) {
    // Builds that a stopped service left half done (none runs before the service is up).
    const root = catalogDir(deps.config);
    for (const repo of existsSync(root) ? readdirSync(root) : []) {
      for (const f of readdirSync(join(root, repo))) if (f.includes('.idx.build-')) rmSync(join(root, repo, f), { recursive: true, force: true });
    }
  }

  repositoryHandle(id: string): Promise<RepositoryHandle> {
    return this.deps.repository(id);
  }

  /**
   * The archive's reader over the repository. Every object is read under its own share of the
   * upstream (RepositoryHandle.use), so a slow consumer between reads holds nothing
   * repository-wide (DESIGN.md §4 invariant 10).
   */
  async archive(repositoryId: string, archiveIdHex: string): Promise<ArchiveReader> {
    const repo = await this.deps.repository(repositoryId);
    const id = Buffer.from(archiveIdHex, 'hex');
    const live = await repo.use(() => Promise.resolve([...repo.manifest.parsed.archives.values()].some((a) => a.id.equals(id))));
    if (!live) {
      rmSync(catalogIndexPath(this.deps.config, repositoryId, archiveIdHex), { force: true });
      throw new CatalogError('not-found', `archive ${archiveIdHex} is not in repository ${repo.info.name}`);
    }
    return openArchive((oid) => repo.use((up) => repo.readObject(up, oid)), repo.key, id);
  }

  /** The archive's index, built first if it is missing or unreadable. The caller closes it. */
  async index(repositoryId: string, archiveIdHex: string): Promise<CatalogIndex> {
    const path = catalogIndexPath(this.deps.config, repositoryId, archiveIdHex);
    for (let attempt = 0; ; attempt++) {
      await this.building.get(path);
      if (existsSync(path)) {
        try {
          const idx = CatalogIndex.open(path);
          const now = new Date();
          utimesSync(path, now, now);
          return idx;
        } catch (err) {
          if (!(err instanceof CorruptIndexError) || attempt > 0) throw err;
          this.deps.log.warn({ repository: repositoryId, archive: archiveIdHex, err: err.message }, 'catalog index unreadable; rebuilding it');
          rmSync(path, { force: true });
        }
      }
      if (attempt > 1) throw new CatalogError('failed', 'the archive index could not be built');
      if (!this.building.has(path)) {
        const p = this.build(repositoryId, archiveIdHex, path).finally(() => this.building.delete(path));
        this.building.set(path, p);
      }
    }
  }

  private async build(repositoryId: string, archiveIdHex: string, path: string): Promise<void> {
    const archive = await this.archive(repositoryId, archiveIdHex);
    const t0 = Date.now();
    const stats = await buildIndex(archive.items(), path);
    this.deps.log.info({ repository: repositoryId, archive: archive.meta.name, entries: stats.entries, bytes: stats.bytes, ms: Date.now() - t0 }, 'catalog index built');
    this.evict(path);
  }

  /** Keeps the indexes within their disk budget after a build (the new one stays). */
  private evict(keep: string): void {
    evictIndexes(catalogDir(this.deps.config), this.deps.budgetBytes ?? CATALOG_BUDGET_BYTES, keep, this.deps.log);
  }

  /** Drops the indexes of archives no longer in the repository's manifest. */
  dropGone(repositoryId: string, liveArchiveIds: ReadonlySet<string>): void {
    const dir = join(catalogDir(this.deps.config), repositoryId);
    for (const f of existsSync(dir) ? readdirSync(dir) : []) {
      const hex = f.replace(/\.idx$/, '');
      if (f.endsWith('.idx') && !liveArchiveIds.has(hex)) rmSync(join(dir, f), { force: true });
    }
  }
}

/** Removes the least recently used indexes below `root` until all of them fit `budget` bytes (`keep` stays). */
export function evictIndexes(root: string, budget: number, keep: string, log: Pick<Logger, 'info'>): void {
  const files: Array<{ path: string; size: number; used: number }> = [];
  for (const repo of existsSync(root) ? readdirSync(root) : []) {
    for (const f of readdirSync(join(root, repo))) {
      if (!f.endsWith('.idx')) continue;
      const p = join(root, repo, f);
      const st = statSync(p, { throwIfNoEntry: false });
      if (st) files.push({ path: p, size: st.size, used: st.mtimeMs });
    }
  }
  let total = files.reduce((n, f) => n + f.size, 0);
  for (const f of files.sort((a, b) => a.used - b.used)) {
    if (total <= budget) break;
    if (f.path === keep) continue;
    rmSync(f.path, { force: true });
    total -= f.size;
    log.info({ index: f.path, bytes: f.size }, 'catalog index evicted (budget)');
  }
}
