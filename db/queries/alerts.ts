// Alerts: channels, incidents and their notices (the outbox the delivery workflows drain).
import { and, asc, desc, eq, inArray, isNotNull, isNull, lt, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { alertChannelsTable, alertNotificationsTable, clientsTable, incidentsTable, jobsTable, policiesTable, repositoriesTable, type AlertChannel, type AlertPayload, type Incident } from '../schema.js';

// ---------------------------------------------------------------------------------------------
// Channels

export async function insertChannel(db: Db, row: typeof alertChannelsTable.$inferInsert): Promise<AlertChannel> {
  return (await db.insert(alertChannelsTable).values(row).returning())[0]!;
}

export async function listChannels(db: Db): Promise<AlertChannel[]> {
  return db.select().from(alertChannelsTable).orderBy(asc(alertChannelsTable.createdAt));
}

export async function findChannelById(db: Db, id: string): Promise<AlertChannel | undefined> {
  return (await db.select().from(alertChannelsTable).where(eq(alertChannelsTable.id, id)))[0];
}

export async function deleteChannel(db: Db, id: string): Promise<void> {
  await db.delete(alertChannelsTable).where(eq(alertChannelsTable.id, id));
}

export async function setChannelEnabled(db: Db, id: string, enabled: boolean): Promise<AlertChannel | undefined> {
  return (await db.update(alertChannelsTable).set({ enabled }).where(eq(alertChannelsTable.id, id)).returning())[0];
}

// ---------------------------------------------------------------------------------------------
// Incidents (written inside the transaction that also writes their notices)

/** Opens an incident unless one of its kind is already open for its subject (a partial unique index). */
export async function insertIncidentUnlessOpen(tx: Db, row: typeof incidentsTable.$inferInsert): Promise<Incident | undefined> {
  return (await tx.insert(incidentsTable).values(row).onConflictDoNothing().returning())[0];
}

export async function resolveOpenIncidents(tx: Db, f: { kinds: Array<Incident['kind']>; subjectKeys: string[] }, resolution: { summary: string; jobId: string | null }): Promise<Incident[]> {
  return tx
    .update(incidentsTable)
    .set({ resolvedAt: new Date(), resolveSummary: resolution.summary, resolvedByJobId: resolution.jobId })
    .where(and(inArray(incidentsTable.kind, f.kinds), inArray(incidentsTable.subjectKey, f.subjectKeys), isNull(incidentsTable.resolvedAt)))
    .returning();
}

/** Subjects of open `stale` incidents whose policy was removed (policy_id was set to null). */
export async function openStaleSubjectsWithoutPolicy(tx: Db): Promise<string[]> {
  const rows = await tx
    .select({ subjectKey: incidentsTable.subjectKey })
    .from(incidentsTable)
    .where(and(eq(incidentsTable.kind, 'stale'), isNull(incidentsTable.resolvedAt), isNull(incidentsTable.policyId)));
  return rows.map((r) => r.subjectKey);
}

/** Every policy with its names and the time of its client's last successful backup into its repository. */
export async function policiesWithLastSuccess(db: Db) {
  const lastSuccess = db
    .select({ clientId: jobsTable.clientId, repositoryId: jobsTable.repositoryId, at: sql<Date>`max(${jobsTable.finishedAt})`.as('at') })
    .from(jobsTable)
    .where(and(eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'succeeded')))
    .groupBy(jobsTable.clientId, jobsTable.repositoryId)
    .as('last_success');
  return db
    .select({ policy: policiesTable, clientName: clientsTable.name, repositoryName: repositoriesTable.name, lastAt: lastSuccess.at })
    .from(policiesTable)
    .innerJoin(clientsTable, eq(clientsTable.id, policiesTable.clientId))
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, policiesTable.repositoryId))
    .leftJoin(lastSuccess, and(eq(lastSuccess.clientId, policiesTable.clientId), eq(lastSuccess.repositoryId, policiesTable.repositoryId)));
}

/** The ids of the policies a backup of this client into this repository satisfies. */
export async function policyIdsOf(tx: Db, clientId: string, repositoryId: string): Promise<string[]> {
  const rows = await tx
    .select({ id: policiesTable.id })
    .from(policiesTable)
    .where(and(eq(policiesTable.clientId, clientId), eq(policiesTable.repositoryId, repositoryId)));
  return rows.map((r) => r.id);
}

export async function listIncidents(db: Db, f: { state: 'open' | 'resolved' | 'all'; limit: number }): Promise<Incident[]> {
  return db
    .select()
    .from(incidentsTable)
    .where(f.state === 'open' ? isNull(incidentsTable.resolvedAt) : f.state === 'resolved' ? isNotNull(incidentsTable.resolvedAt) : undefined)
    .orderBy(f.state === 'resolved' ? desc(incidentsTable.resolvedAt) : desc(incidentsTable.openedAt))
    .limit(f.limit);
}

// ---------------------------------------------------------------------------------------------
// Notices

/** One pending notice per enabled channel; returns the new notices' ids. */
export async function insertNotices(tx: Db, incidentId: string, event: 'firing' | 'resolved', payload: AlertPayload): Promise<string[]> {
  const channels = await tx.select({ id: alertChannelsTable.id }).from(alertChannelsTable).where(eq(alertChannelsTable.enabled, true));
  if (!channels.length) return [];
  const rows = await tx
    .insert(alertNotificationsTable)
    .values(channels.map((c) => ({ incidentId, channelId: c.id, event, payload })))
    .onConflictDoNothing()
    .returning({ id: alertNotificationsTable.id });
  return rows.map((r) => r.id);
}

export async function findNotice(db: Db, id: string) {
  return (await db.select().from(alertNotificationsTable).where(eq(alertNotificationsTable.id, id)))[0];
}

export async function noticesOf(db: Db, incidentIds: string[]) {
  if (!incidentIds.length) return [];
  return db.select().from(alertNotificationsTable).where(inArray(alertNotificationsTable.incidentId, incidentIds)).orderBy(asc(alertNotificationsTable.createdAt));
}

/** Pending notices whose delivery workflow was not started yet (of these ids, if given), oldest first. */
export async function undispatchedNotices(db: Db, ids?: string[], limit = 500): Promise<string[]> {
  const where = and(eq(alertNotificationsTable.state, 'pending'), isNull(alertNotificationsTable.dispatchedAt), ids ? inArray(alertNotificationsTable.id, ids) : undefined);
  const rows = await db.select({ id: alertNotificationsTable.id }).from(alertNotificationsTable).where(where).orderBy(asc(alertNotificationsTable.createdAt)).limit(limit);
  return rows.map((r) => r.id);
}

export async function markNoticeDispatched(db: Db, id: string): Promise<void> {
  await db.update(alertNotificationsTable).set({ dispatchedAt: new Date() }).where(eq(alertNotificationsTable.id, id));
}

/** Notices whose delivery workflow was started before `olderThan` but that are still pending (lost starts) get dispatched again. */
export async function undispatchStuckNotices(db: Db, olderThan: Date): Promise<void> {
  await db
    .update(alertNotificationsTable)
    .set({ dispatchedAt: null })
    .where(and(eq(alertNotificationsTable.state, 'pending'), isNotNull(alertNotificationsTable.dispatchedAt), lt(alertNotificationsTable.dispatchedAt, olderThan)));
}

export async function countNoticeAttempt(db: Db, id: string): Promise<void> {
  await db.update(alertNotificationsTable).set({ attempts: sql`${alertNotificationsTable.attempts} + 1` }).where(eq(alertNotificationsTable.id, id));
}

export async function setNoticeError(db: Db, id: string, error: string): Promise<void> {
  await db.update(alertNotificationsTable).set({ lastError: error.slice(0, 1000) }).where(eq(alertNotificationsTable.id, id));
}

export async function markNoticeSent(db: Db, id: string): Promise<void> {
  await db.update(alertNotificationsTable).set({ state: 'sent', sentAt: new Date(), lastError: null }).where(eq(alertNotificationsTable.id, id));
}

export async function markNoticeFailed(db: Db, id: string, error: string): Promise<void> {
  await db.update(alertNotificationsTable).set({ state: 'failed', lastError: error.slice(0, 1000) }).where(eq(alertNotificationsTable.id, id));
}

export async function failedNoticeCount(db: Db): Promise<number> {
  const r = await db.select({ n: sql<number>`count(*)::int` }).from(alertNotificationsTable).where(eq(alertNotificationsTable.state, 'failed'));
  return Number(r[0]?.n ?? 0);
}
