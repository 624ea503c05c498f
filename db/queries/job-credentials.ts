// A job's SSH credentials: one key pair per round of the job, found by fingerprint when sshd asks
// the AuthorizedKeysCommand, revoked when the job ends or misbehaves.
import { eq } from 'drizzle-orm';
import type { Db } from '../client.js';
import { jobCredentialsTable, jobsTable, type Job } from '../schema.js';

export type JobCredential = typeof jobCredentialsTable.$inferSelect;

/** The credential with this fingerprint, with the state and repository of its job. */
export async function findCredentialByFingerprint(db: Db, fingerprint: string): Promise<{ cred: JobCredential; jobState: Job['state']; repositoryId: string } | undefined> {
  const rows = await db
    .select({ cred: jobCredentialsTable, jobState: jobsTable.state, repositoryId: jobsTable.repositoryId })
    .from(jobCredentialsTable)
    .innerJoin(jobsTable, eq(jobsTable.id, jobCredentialsTable.jobId))
    .where(eq(jobCredentialsTable.fingerprint, fingerprint));
  return rows[0];
}

export async function listJobCredentials(db: Db, jobId: string): Promise<JobCredential[]> {
  return db.select().from(jobCredentialsTable).where(eq(jobCredentialsTable.jobId, jobId));
}

export async function insertJobCredential(db: Db, row: typeof jobCredentialsTable.$inferInsert): Promise<void> {
  await db.insert(jobCredentialsTable).values(row);
}
