// Storage hosts (DESIGN.md §2, docs/storage-hosts.md): each registers itself when its storage
// worker starts and reports every STORAGE_HOST_REPORT_MS; one silent for longer than
// STORAGE_HOST_SILENT_AFTER_S is down, and new jobs on it fail at once with a message that says so
// instead of waiting for a worker that is not there. Jobs on the other hosts are not affected.
import { z } from 'zod';
import { listRepositories } from '../db/queries/repositories.js';
import * as hosts from '../db/queries/storage-hosts.js';
import type { Db } from '../db/client.js';
import { admitAndWake } from './admission.js';
import type { ServiceDeps } from './deps.js';
import { invalid, notFound } from './errors.js';

/** How often a storage worker reports that it is alive. */
export const STORAGE_HOST_REPORT_MS = 10_000;
/** Three missed reports: the host (or its storage worker, or its way to PostgreSQL) is down. */
export const STORAGE_HOST_SILENT_AFTER_S = 30;

export type StorageHostStatus = 'up' | 'down';

export interface StorageHostView {
  name: string;
  sshHost: string;
  sshPort: number;
  status: StorageHostStatus;
  lastSeenAt: Date | null;
  /** Seconds since its last report, by the database's clock. */
  silentSeconds: number | null;
  repositories: number;
  maxConcurrentBackups: number | null;
  createdAt: Date;
}

function statusOf(row: hosts.StorageHostRow): StorageHostStatus {
  return row.silentSeconds !== null && row.silentSeconds <= STORAGE_HOST_SILENT_AFTER_S ? 'up' : 'down';
}

export async function listStorageHosts(deps: Pick<ServiceDeps, 'db'>): Promise<StorageHostView[]> {
  const [rows, repos] = await Promise.all([hosts.listStorageHosts(deps.db), listRepositories(deps.db)]);
  return rows.map((r) => ({
    name: r.name,
    sshHost: r.sshHost,
    sshPort: r.sshPort,
    status: statusOf(r),
    lastSeenAt: r.lastSeenAt,
    silentSeconds: r.silentSeconds === null ? null : Math.max(0, Math.round(r.silentSeconds)),
    repositories: repos.filter((repo) => repo.storageHost === r.name).length,
    maxConcurrentBackups: r.maxConcurrentBackups,
    createdAt: r.createdAt,
  }));
}

/** "storage host X is not responding (last seen …)", the one wording of a down host. */
export function notRespondingMessage(name: string, lastSeenAt: Date | null, silentSeconds: number | null): string {
  const seen = lastSeenAt && silentSeconds !== null ? `last seen ${lastSeenAt.toISOString()}, ${Math.round(silentSeconds)} s ago` : 'never seen';
  return `storage host ${name} is not responding (${seen}); its storage worker must be running for jobs on its repositories`;
}

/**
 * Why a job on `name` cannot start now, or undefined when its host reports in. A host without a
 * row (an installation from before storage hosts registered) is given the benefit of the doubt:
 * its jobs wait for its worker as they always did.
 */
export async function storageHostDownReason(db: Db, name: string): Promise<string | undefined> {
  const row = await hosts.findStorageHost(db, name);
  if (!row || statusOf(row) === 'up') return undefined;
  return notRespondingMessage(name, row.lastSeenAt, row.silentSeconds);
}

/**
 * The storage host a new repository goes to: the one asked for, else this host. Its repository
 * is created by `borg init` as this host's storage account, so another host's repositories are
 * created there (its own `borgcube repo add`, run with its configuration).
 */
export async function storageHostForNewRepository(deps: Pick<ServiceDeps, 'db' | 'config'>, asked: string | undefined): Promise<string> {
  const local = deps.config.storageHost;
  if (asked === undefined || asked === local) return local;
  const known = await hosts.listStorageHosts(deps.db);
  if (!known.some((h) => h.name === asked)) {
    const names = [...new Set([local, ...known.map((h) => h.name)])].sort();
    throw invalid(`storage host ${JSON.stringify(asked)} is unknown (known: ${names.join(', ')}); a storage host registers itself when its storage worker starts`);
  }
  throw invalid(`repositories of storage host ${asked} are created on ${asked} itself (borg init runs as its storage account): run \`borgcube repo add\` there, with its configuration (BORGCUBE_STORAGE_HOST=${asked}); this is ${local}`);
}

/** `--max-backups N` or `default` (null: the server's BORGCUBE_MAX_BACKUPS_PER_HOST). */
export const updateStorageHostInput = z.object({
  maxConcurrentBackups: z.union([z.number().int().min(1).max(9999), z.null()]).describe('backups that may run on the host at once; null = the server default'),
});

/**
 * Sets a storage host's backup limit. The row exists once its storage worker has started (it
 * registers itself); a raised limit admits queued backups at once instead of at the next end.
 */
export async function updateStorageHost(deps: Pick<ServiceDeps, 'db' | 'config' | 'log' | 'temporal'>, name: string, raw: z.input<typeof updateStorageHostInput>): Promise<{ name: string; maxConcurrentBackups: number | null }> {
  const input = updateStorageHostInput.parse(raw);
  const row = await hosts.setStorageHostBackupLimit(deps.db, name, input.maxConcurrentBackups);
  if (!row) throw notFound('storage host', name);
  await admitAndWake(deps, row.name);
  return { name: row.name, maxConcurrentBackups: row.maxConcurrentBackups };
}

/** The backup limit that applies to a storage host, and where it comes from. */
export function effectiveHostBackupLimit(deps: Pick<ServiceDeps, 'config'>, host: { maxConcurrentBackups: number | null }): { limit: number; source: 'storage host' | 'default' } {
  return host.maxConcurrentBackups !== null ? { limit: host.maxConcurrentBackups, source: 'storage host' } : { limit: deps.config.queue.maxBackupsPerHost, source: 'default' };
}
