// The backup queue of a storage host, as services/admission.ts reads and changes it under the
// host's advisory lock: running backups per repository, queued backups, the limits, and the
// promotion of queued rows to running. A queued row is an ordinary job row (state `queued`), so
// the queue lives in PostgreSQL and survives restarts of every process.
import { and, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { jobsTable, repositoriesTable, storageHostsTable, type Job } from '../schema.js';

/** Backups running on the host, per repository. */
export async function runningBackupsOnHost(db: Db, storageHost: string): Promise<Map<string, number>> {
  const rows = await db
    .select({ repositoryId: jobsTable.repositoryId, n: sql<string>`count(*)` })
    .from(jobsTable)
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, jobsTable.repositoryId))
    .where(and(eq(repositoriesTable.storageHost, storageHost), eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'running')))
    .groupBy(jobsTable.repositoryId);
  return new Map(rows.map((r) => [r.repositoryId, Number(r.n)]));
}

/** Queued backups on the host, oldest first (the plan orders them fairly). */
export async function queuedBackupsOnHost(db: Db, storageHost: string, limit = 10_000) {
  return db
    .select({ id: jobsTable.id, clientId: jobsTable.clientId, repositoryId: jobsTable.repositoryId, createdAt: jobsTable.createdAt })
    .from(jobsTable)
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, jobsTable.repositoryId))
    .where(and(eq(repositoriesTable.storageHost, storageHost), eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'queued')))
    .orderBy(jobsTable.createdAt, jobsTable.id)
    .limit(limit);
}

/** The storage hosts that have queued backups (the periodic re-check visits each). */
export async function hostsWithQueuedBackups(db: Db): Promise<string[]> {
  const rows = await db
    .selectDistinct({ host: repositoriesTable.storageHost })
    .from(jobsTable)
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, jobsTable.repositoryId))
    .where(and(eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'queued')));
  return rows.map((r) => r.host);
}

/** The host's own limit; null when it has none (or no storage_hosts row): the server default applies. */
export async function hostBackupLimit(db: Db, storageHost: string): Promise<number | null> {
  const rows = await db.select({ max: storageHostsTable.maxConcurrentBackups }).from(storageHostsTable).where(eq(storageHostsTable.name, storageHost));
  return rows[0]?.max ?? null;
}

/** Repositories' own limits, for those that have one. */
export async function repositoryBackupLimits(db: Db, ids: string[]): Promise<Map<string, number>> {
  if (!ids.length) return new Map();
  const rows = await db
    .select({ id: repositoriesTable.id, max: repositoriesTable.maxConcurrentBackups })
    .from(repositoriesTable)
    .where(and(inArray(repositoriesTable.id, ids), isNotNull(repositoriesTable.maxConcurrentBackups)));
  return new Map(rows.map((r) => [r.id, r.max!]));
}

/** When each client's latest backup started (was admitted); clients without one are absent. */
export async function lastBackupStarts(db: Db, clientIds: string[]): Promise<Map<string, Date>> {
  if (!clientIds.length) return new Map();
  const rows = await db
    .select({ clientId: jobsTable.clientId, at: sql<Date | string>`max(${jobsTable.startedAt})` })
    .from(jobsTable)
    .where(and(inArray(jobsTable.clientId, clientIds), eq(jobsTable.kind, 'backup'), isNotNull(jobsTable.startedAt)))
    .groupBy(jobsTable.clientId);
  return new Map(rows.flatMap((r) => (r.clientId && r.at ? [[r.clientId, new Date(r.at)] as [string, Date]] : [])));
}

/** Queued rows become running (admitted now); a row that left the queue meanwhile (cancelled) stays as it is. */
export async function promoteQueued(db: Db, ids: string[]): Promise<string[]> {
  if (!ids.length) return [];
  const rows = await db
    .update(jobsTable)
    .set({ state: 'running', startedAt: new Date(), phase: 'reserve' })
    .where(and(inArray(jobsTable.id, ids), eq(jobsTable.state, 'queued')))
    .returning({ id: jobsTable.id });
  return rows.map((r) => r.id);
}

/** The storage host of a job's repository. */
export async function storageHostOfJob(db: Db, jobId: string): Promise<{ job: Job; storageHost: string } | undefined> {
  const rows = await db.select({ job: jobsTable, storageHost: repositoriesTable.storageHost }).from(jobsTable).innerJoin(repositoriesTable, eq(repositoriesTable.id, jobsTable.repositoryId)).where(eq(jobsTable.id, jobId));
  return rows[0];
}

/** The storage hosts holding the given repositories. */
export async function storageHostsOf(db: Db, repositoryIds: string[]): Promise<string[]> {
  if (!repositoryIds.length) return [];
  const rows = await db.selectDistinct({ host: repositoriesTable.storageHost }).from(repositoriesTable).where(inArray(repositoriesTable.id, repositoryIds));
  return rows.map((r) => r.host);
}
