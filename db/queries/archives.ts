// Archives as the server recorded them (finalize, prune). Rows of deleted archives stay for history.
import { and, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { archivesTable, clientsTable, jobsTable, policiesTable, repositoriesTable, type Archive } from '../schema.js';

export type ArchiveRow = Archive & { clientName: string | null };

export async function listLiveArchives(db: Db, repositoryId: string, limit = 1000): Promise<ArchiveRow[]> {
  const rows = await db
    .select({ archive: archivesTable, clientName: clientsTable.name })
    .from(archivesTable)
    .leftJoin(clientsTable, eq(clientsTable.id, archivesTable.clientId))
    .where(and(eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt)))
    .orderBy(desc(archivesTable.time))
    .limit(limit);
  return rows.map((r) => ({ ...r.archive, clientName: r.clientName }));
}

export async function countLiveArchives(db: Db, repositoryId: string): Promise<number> {
  const r = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(archivesTable)
    .where(and(eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt)));
  return Number(r[0]?.n ?? 0);
}

/** Recorded once per repository and borg id: a retried finalize or cleanup inserts nothing new. */
export async function insertArchiveOnce(db: Db, row: typeof archivesTable.$inferInsert): Promise<void> {
  await db.insert(archivesTable).values(row).onConflictDoNothing();
}

/** Borg ids of the client's archives not marked deleted. */
export async function clientArchiveBorgIds(db: Db, clientId: string, repositoryId: string): Promise<string[]> {
  const rows = await db
    .select({ borgId: archivesTable.borgId })
    .from(archivesTable)
    .where(and(eq(archivesTable.clientId, clientId), eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt)));
  return rows.map((r) => r.borgId);
}

/** Row ids and borg ids of the repository's archives not marked deleted. */
export async function liveArchiveRows(db: Db, repositoryId: string): Promise<Array<{ id: string; borgId: string }>> {
  return db.select({ id: archivesTable.id, borgId: archivesTable.borgId }).from(archivesTable).where(and(eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt)));
}

/** An archive `borg check --repair` rewrote (and BorgCube re-signed) keeps its row under its new id. */
export async function replaceArchiveBorgId(db: Db, repositoryId: string, before: string, after: string): Promise<void> {
  await db
    .update(archivesTable)
    .set({ borgId: after })
    .where(and(eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt), eq(archivesTable.borgId, before)));
}

export async function markArchivesDeletedByBorgId(db: Db, repositoryId: string, borgIds: string[], at: Date): Promise<void> {
  await db
    .update(archivesTable)
    .set({ deletedAt: at })
    .where(and(eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt), inArray(archivesTable.borgId, borgIds)));
}

export async function markArchivesDeleted(db: Db, ids: string[], at: Date): Promise<void> {
  await db.update(archivesTable).set({ deletedAt: at }).where(inArray(archivesTable.id, ids));
}

/** A live archive with what the console shows beside it: client, repository and the policy of the job that made it. */
export type ArchiveDetail = Archive & { clientName: string | null; repositoryName: string; policyId: string | null; policyName: string | null };

function detailQuery(db: Db) {
  return db
    .select({ archive: archivesTable, clientName: clientsTable.name, repositoryName: repositoriesTable.name, policyId: jobsTable.policyId, policyName: policiesTable.name })
    .from(archivesTable)
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, archivesTable.repositoryId))
    .leftJoin(clientsTable, eq(clientsTable.id, archivesTable.clientId))
    .leftJoin(jobsTable, eq(jobsTable.id, archivesTable.jobId))
    .leftJoin(policiesTable, eq(policiesTable.id, jobsTable.policyId));
}

const toDetail = (r: { archive: Archive; clientName: string | null; repositoryName: string; policyId: string | null; policyName: string | null }): ArchiveDetail => ({
  ...r.archive,
  clientName: r.clientName,
  repositoryName: r.repositoryName,
  policyId: r.policyId,
  policyName: r.policyName,
});

/** Live archives named `name` (unique per repository, so at most one per repository). */
export async function findLiveArchivesByName(db: Db, name: string): Promise<ArchiveDetail[]> {
  const rows = await detailQuery(db).where(and(eq(archivesTable.name, name), isNull(archivesTable.deletedAt)));
  return rows.map(toDetail);
}

export async function findLiveArchiveById(db: Db, id: string): Promise<ArchiveDetail | undefined> {
  const rows = await detailQuery(db).where(and(eq(archivesTable.id, id), isNull(archivesTable.deletedAt)));
  return rows.map(toDetail)[0];
}

/** A client's live archives, newest first, optionally in one repository. */
export async function listClientArchives(db: Db, clientId: string, repositoryId?: string, limit = 1000): Promise<ArchiveDetail[]> {
  const cond = [eq(archivesTable.clientId, clientId), isNull(archivesTable.deletedAt)];
  if (repositoryId) cond.push(eq(archivesTable.repositoryId, repositoryId));
  const rows = await detailQuery(db).where(and(...cond)).orderBy(desc(archivesTable.time)).limit(limit);
  return rows.map(toDetail);
}
