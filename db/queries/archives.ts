// Archives as the server recorded them (finalize, prune). Rows of deleted archives stay for history.
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
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
