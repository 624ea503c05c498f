// Jobs of every kind and what belongs to one job: its log, credential, key and violations.
import { sql } from 'drizzle-orm';
import { bigint, bigserial, index, integer, jsonb, pgEnum, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, updatedAt } from './columns.js';
import { clientsTable } from './clients.js';
import { policiesTable } from './policies.js';
import { repositoriesTable } from './repositories.js';

export const jobKind = pgEnum('job_kind', ['backup', 'restore', 'prune', 'check']);
export const jobState = pgEnum('job_state', ['queued', 'running', 'succeeded', 'failed', 'violation', 'cancelled']);

export interface JobStats {
  originalSize?: number;
  compressedSize?: number;
  deduplicatedSize?: number;
  nfiles?: number;
  /** Bytes the client sent through the proxy (puts), and of those, objects new to the repository. */
  uploadedBytes?: number;
  uploadedObjects?: number;
  durationSeconds?: number;
  [k: string]: number | string | undefined;
}

/**
 * What a restore job restores (kind `restore`): one archive, all of it or some paths, onto the
 * job's client (`jobs.client_id`, the target) into `target`. Set once when the job is created.
 */
export interface RestoreSpec {
  /** archives.id and Borg's archive object id (hex) of the archive restored. */
  archiveId: string;
  archiveBorgId: string;
  archiveName: string;
  /** The client whose archive it is (may differ from the target client). */
  sourceClientId: string | null;
  /** Archive paths (no leading slash) to restore; empty means the whole archive. */
  paths: string[];
  /** Absolute directory on the target client that borg extract runs in ("/" for in place). */
  target: string;
  inPlace: boolean;
  stripComponents: number;
  /** Set when one database dump entry (paths = [entry]) is streamed into a load command instead of a file. */
  dump?: DumpRestore;
}

/**
 * A dump entry restored into a database the job creates on the target client (issue 24 point 2):
 * `borg extract --stdout` piped into psql / pg_restore / mysql / sqlite3. `target` of the spec is
 * then a label naming that database, so that two restores into the same one cannot run at once.
 */
export interface DumpRestore {
  entry: string;
  kind: 'postgresql' | 'mysql' | 'sqlite';
  format?: 'plain' | 'custom';
  /** The database to create (PostgreSQL, MySQL) or the new file (SQLite, absolute). */
  into: string;
  host?: string;
  port?: number;
  user?: string;
  sudoUser?: string;
  defaultsFile?: string;
}

export const jobsTable = pgTable(
  'jobs',
  {
    /** Also the Temporal workflow id. */
    id: uuid('id').primaryKey(),
    kind: jobKind('kind').notNull(),
    clientId: uuid('client_id').references(() => clientsTable.id, { onDelete: 'set null' }),
    repositoryId: uuid('repository_id').notNull().references(() => repositoriesTable.id, { onDelete: 'cascade' }),
    policyId: uuid('policy_id').references(() => policiesTable.id, { onDelete: 'set null' }),
    /** Reserved by the server when the job starts; unique per repository. */
    archiveName: text('archive_name'),
    state: jobState('state').notNull().default('running'),
    /** Latest workflow phase (reserve, prepare, push, run, finalize, cleanup, done). */
    phase: text('phase').notNull().default('reserve'),
    triggeredBy: text('triggered_by'),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    stats: jsonb('stats').$type<JobStats>(),
    error: text('error'),
    /** Restore jobs only: what is restored where. */
    restore: jsonb('restore').$type<RestoreSpec>(),
  },
  (t) => [
    uniqueIndex('jobs_repository_archive_idx').on(t.repositoryId, t.archiveName),
    index('jobs_client_created_idx').on(t.clientId, t.createdAt),
    index('jobs_state_created_idx').on(t.state, t.createdAt),
    index('jobs_created_idx').on(t.createdAt),
    // The jobs list filtered by kind or by repository, newest first: without them a kind with no
    // jobs (no restore yet) read every row of 100,000 (275 ms, bench:fleet --console-only).
    index('jobs_kind_created_idx').on(t.kind, t.createdAt),
    index('jobs_repository_created_idx').on(t.repositoryId, t.createdAt),
  ],
);
export type Job = typeof jobsTable.$inferSelect;

export const jobLogLinesTable = pgTable(
  'job_log_lines',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    jobId: uuid('job_id').notNull().references(() => jobsTable.id, { onDelete: 'cascade' }),
    /** Per-job sequence number; live streams resume after the last one a viewer saw. */
    seq: integer('seq').notNull(),
    time: timestamp('time', { withTimezone: true }).notNull(),
    level: text('level').notNull(),
    /** Borg's JSON `type` (log_message, file_status, …) or `borgcube` for our own lines. */
    type: text('type').notNull(),
    msgid: text('msgid'),
    message: text('message').notNull(),
  },
  (t) => [uniqueIndex('job_log_lines_job_seq_idx').on(t.jobId, t.seq)],
);
export type JobLogLine = typeof jobLogLinesTable.$inferSelect;

/**
 * The ephemeral SSH key that lets one job's client reach the proxy. sshd asks the repository
 * service (AuthorizedKeysCommand) on every login; only unrevoked, unexpired rows of running jobs count.
 */
export const jobCredentialsTable = pgTable(
  'job_credentials',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    jobId: uuid('job_id').notNull().references(() => jobsTable.id, { onDelete: 'cascade' }),
    clientId: uuid('client_id').notNull().references(() => clientsTable.id, { onDelete: 'cascade' }),
    /** "ssh-ed25519 AAAA…" (no comment). */
    publicKey: text('public_key').notNull(),
    fingerprint: text('fingerprint').notNull().unique(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [index('job_credentials_job_idx').on(t.jobId)],
);
export type JobCredential = typeof jobCredentialsTable.$inferSelect;

/** The job key the repository service prepared for a backup or restore job. */
export const jobKeysTable = pgTable('job_keys', {
  jobId: uuid('job_id').primaryKey().references(() => jobsTable.id, { onDelete: 'cascade' }),
  /**
   * Borg key type byte of the job key: 0x00 keyfile or 0x04 keyfile-blake2 (backups, and restores
   * whose workflow predates authenticated keys), 0x07 authenticated or 0x06 authenticated-blake2
   * (restores; proxy/storage/job-key.ts).
   */
  keyType: integer('key_type').notNull(),
  /** {keyText, passphrase} sealed. */
  keySealed: text('key_sealed').notNull(),
  /** Repository id the client is shown (hex); not the real one. */
  fakeRepoId: text('fake_repo_id').notNull(),
  /** Highest AES-CTR counter handed out under the job key, so a retried session never reuses one. */
  nextNonce: bigint('next_nonce', { mode: 'bigint' }).notNull().default(sql`0`),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
export type JobKey = typeof jobKeysTable.$inferSelect;

export const violationsTable = pgTable(
  'violations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    jobId: uuid('job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
    clientId: uuid('client_id').references(() => clientsTable.id, { onDelete: 'set null' }),
    repositoryId: uuid('repository_id').references(() => repositoriesTable.id, { onDelete: 'set null' }),
    /** Machine-readable kind, e.g. `forbidden-method`, `id-mismatch`, `manifest-tamper`. */
    kind: text('kind').notNull(),
    /** What the client attempted, for humans (never interpreted). */
    detail: text('detail').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('violations_job_idx').on(t.jobId), index('violations_created_idx').on(t.createdAt)],
);
export type Violation = typeof violationsTable.$inferSelect;
