// Layout of the storage account's folder (<data dir>/storage, 0700). The repository service
// writes here; the storage worker in the same process pushes the prepared job files from here to
// clients (activities/client-files.ts). Nothing outside the storage host reads it.
import { join } from 'node:path';

export interface StorageLayoutConfig {
  paths: { storageDir: string };
}

/** Per-repository state: the real-key nonce file, chunk indexes per archive and for the repository. */
export const repoStateDir = (c: StorageLayoutConfig, repositoryId: string) => join(c.paths.storageDir, 'repos', repositoryId);
/** Everything the service keeps about one job while it runs. */
export const jobServerDir = (c: StorageLayoutConfig, jobId: string) => join(c.paths.storageDir, 'jobs', jobId);
/** The files pushed into the client's job folder. */
export const jobClientFilesDir = (c: StorageLayoutConfig, jobId: string) => join(jobServerDir(c, jobId), 'client');
/**
 * The files cache pulled back from the client at the end of a job; cleanupJob makes it the
 * client's files cache (below) only if the job succeeded.
 */
export const jobPulledFilesCachePath = (c: StorageLayoutConfig, jobId: string) => join(jobServerDir(c, jobId), 'files-cache.pulled');
/** Largest files cache accepted back from a client and handed to it again (a million files take about 100 MB). */
export const MAX_FILES_CACHE = 1024 * 1024 * 1024;
/** The client's files cache from its last successful job (it goes back only to that client). */
export const filesCachesDir = (c: StorageLayoutConfig) => join(c.paths.storageDir, 'files-caches');
export const filesCachePath = (c: StorageLayoutConfig, clientId: string, repositoryId: string) => join(filesCachesDir(c), clientId, `${repositoryId}.files`);
/** BORG_BASE_DIR of borg commands the service runs itself (prune, check, compact). */
export const serviceBorgDir = (c: StorageLayoutConfig) => join(c.paths.storageDir, 'borg');

/**
 * The repository URL a job's client is given: BorgCube's sshd, the proxy account, and the job id
 * as the path — never the repository's real location. Written in borg's canonical form
 * (Location.canonical_path), because the client compares it with the prepared cache's.
 */
export function jobRepositoryUrl(c: { accounts: { proxy: string }; ssh: { host: string; port: number } }, jobId: string): string {
  const host = c.ssh.host.includes(':') ? `[${c.ssh.host}]` : c.ssh.host;
  return `ssh://${c.accounts.proxy}@${host}:${c.ssh.port}/${jobId}`;
}

/** The catalog (browse index) of one archive; built on first use, dropped with the archive. */
export const catalogDir = (c: StorageLayoutConfig) => join(c.paths.storageDir, 'catalog');
export const catalogIndexPath = (c: StorageLayoutConfig, repositoryId: string, archiveIdHex: string) => join(catalogDir(c), repositoryId, `${archiveIdHex}.idx`);
/** What the catalog indexes of a storage host may take on disk together; the least recently used go first. */
export const CATALOG_BUDGET_BYTES = 8 * 1024 ** 3;
