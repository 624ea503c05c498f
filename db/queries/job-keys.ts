// A job's key: sealed key text and passphrase, the repository id the client is shown, and the
// job-key AES-CTR counter (BORG_PROTOCOL.md §9.3). Sealing and opening live in
// proxy/storage/job-key.ts; these rows hold only the sealed text.
import { eq } from 'drizzle-orm';
import type { Db } from '../client.js';
import { jobKeysTable, type JobKey } from '../schema.js';

export async function findJobKey(db: Db, jobId: string): Promise<JobKey | undefined> {
  return (await db.select().from(jobKeysTable).where(eq(jobKeysTable.jobId, jobId)))[0];
}

export async function insertJobKey(db: Db, row: typeof jobKeysTable.$inferInsert): Promise<JobKey> {
  return (await db.insert(jobKeysTable).values(row).returning())[0]!;
}

export async function deleteJobKey(db: Db, jobId: string): Promise<void> {
  await db.delete(jobKeysTable).where(eq(jobKeysTable.jobId, jobId));
}

/** The next free job-key counter value, or undefined once the key is gone. */
export async function jobKeyNextNonce(db: Db, jobId: string): Promise<bigint | undefined> {
  return (await db.select({ n: jobKeysTable.nextNonce }).from(jobKeysTable).where(eq(jobKeysTable.jobId, jobId)))[0]?.n;
}

export async function setJobKeyNextNonce(db: Db, jobId: string, next: bigint): Promise<void> {
  await db.update(jobKeysTable).set({ nextNonce: next, updatedAt: new Date() }).where(eq(jobKeysTable.jobId, jobId));
}
