// Archives as the server recorded them (finalize, prune). Rows of deleted archives stay for history.
import { and, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { archivesTable, clientsTable, type Archive } from '../schema.js';

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

export async function markArchivesDeletedByBorgId(db: Db, repositoryId: string, borgIds: string[], at: Date): Promise<void> {
  await db
    .update(archivesTable)
    .set({ deletedAt: at })
    .where(and(eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt), inArray(archivesTable.borgId, borgIds)));
}

export async function markArchivesDeleted(db: Db, ids: string[], at: Date): Promise<void> {
  await db.update(archivesTable).set({ deletedAt: at }).where(inArray(archivesTable.id, ids));
}
