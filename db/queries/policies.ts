// Policies (a client bound to a repository with schedules, retention and a staleness threshold).
import { and, asc, desc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../client.js';
import { clientsTable, jobsTable, policiesTable, repositoriesTable, repositoryChecksTable, type Job, type Policy, type RepositoryCheck } from '../schema.js';

export type PolicyRow = Policy & { clientName: string; repositoryName: string; storageHost: string };

const withNames = { policy: policiesTable, clientName: clientsTable.name, repositoryName: repositoriesTable.name, storageHost: repositoriesTable.storageHost };

function flatten(r: { policy: Policy; clientName: string; repositoryName: string; storageHost: string }): PolicyRow {
  return { ...r.policy, clientName: r.clientName, repositoryName: r.repositoryName, storageHost: r.storageHost };
}

function joined(db: Db) {
  return db
    .select(withNames)
    .from(policiesTable)
    .innerJoin(clientsTable, eq(clientsTable.id, policiesTable.clientId))
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, policiesTable.repositoryId));
}

export async function listPolicies(db: Db, f: { clientId?: string; repositoryId?: string } = {}): Promise<PolicyRow[]> {
  const where = and(f.clientId ? eq(policiesTable.clientId, f.clientId) : undefined, f.repositoryId ? eq(policiesTable.repositoryId, f.repositoryId) : undefined);
  return (await joined(db).where(where).orderBy(asc(policiesTable.name))).map(flatten);
}

export async function findPolicyByName(db: Db, name: string): Promise<PolicyRow | undefined> {
  const r = (await joined(db).where(eq(policiesTable.name, name)))[0];
  return r && flatten(r);
}

export async function findPolicyById(db: Db, id: string): Promise<PolicyRow | undefined> {
  const r = (await joined(db).where(eq(policiesTable.id, id)))[0];
  return r && flatten(r);
}

export async function insertPolicy(db: Db, row: typeof policiesTable.$inferInsert): Promise<Policy> {
  return (await db.insert(policiesTable).values(row).returning())[0]!;
}

export async function updatePolicy(db: Db, id: string, patch: Partial<typeof policiesTable.$inferInsert>): Promise<Policy | undefined> {
  return (await db.update(policiesTable).set({ ...patch, updatedAt: new Date() }).where(eq(policiesTable.id, id)).returning())[0];
}

export async function deletePolicy(db: Db, id: string): Promise<boolean> {
  return (await db.delete(policiesTable).where(eq(policiesTable.id, id)).returning({ id: policiesTable.id })).length > 0;
}

/** The newest job of a kind started for a policy. */
export async function lastPolicyJob(db: Db, policyId: string, kind: Job['kind']): Promise<Job | undefined> {
  return (
    await db
      .select()
      .from(jobsTable)
      .where(and(eq(jobsTable.policyId, policyId), eq(jobsTable.kind, kind)))
      .orderBy(desc(jobsTable.createdAt))
      .limit(1)
  )[0];
}

export async function listRepositoryChecks(db: Db, repositoryId: string, limit = 20): Promise<RepositoryCheck[]> {
  return db.select().from(repositoryChecksTable).where(eq(repositoryChecksTable.repositoryId, repositoryId)).orderBy(desc(repositoryChecksTable.finishedAt)).limit(limit);
}

/** The newest job of each kind of each of these policies (one query for a whole list). */
export async function lastPolicyJobs(db: Db, policyIds: string[], kinds: Array<Job['kind']>): Promise<Job[]> {
  if (!policyIds.length || !kinds.length) return [];
  return db
    .selectDistinctOn([jobsTable.policyId, jobsTable.kind])
    .from(jobsTable)
    .where(and(inArray(jobsTable.policyId, policyIds), inArray(jobsTable.kind, kinds)))
    .orderBy(jobsTable.policyId, jobsTable.kind, desc(jobsTable.createdAt));
}

/** The latest check of each of these repositories. */
export async function lastRepositoryChecks(db: Db, repositoryIds: string[]): Promise<RepositoryCheck[]> {
  if (!repositoryIds.length) return [];
  return db
    .selectDistinctOn([repositoryChecksTable.repositoryId])
    .from(repositoryChecksTable)
    .where(inArray(repositoryChecksTable.repositoryId, repositoryIds))
    .orderBy(repositoryChecksTable.repositoryId, desc(repositoryChecksTable.finishedAt));
}

/** A check's result, once per job: a retried activity replaces its earlier row. */
export async function recordRepositoryCheck(db: Db, row: typeof repositoryChecksTable.$inferInsert & { jobId: string }): Promise<void> {
  await db.delete(repositoryChecksTable).where(eq(repositoryChecksTable.jobId, row.jobId));
  await db.insert(repositoryChecksTable).values(row);
}
