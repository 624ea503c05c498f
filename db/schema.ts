// The database's source of truth (STYLE.md §11). drizzle-kit generates the migrations in
// db/migrations from this file; they are never edited by hand.
//
// Secrets (repository passphrases and keys, job keys) are stored only as sealed text produced by
// infra/secrets.ts (AES-256-GCM under the server master key, bound to the row they belong to);
// the columns are named *Sealed and are never selected by list/show queries.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

// ---------------------------------------------------------------------------------------------
// People and access

export const userRole = pgEnum('user_role', ['admin', 'operator', 'viewer']);

export const usersTable = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  username: text('username').notNull().unique(),
  /** scrypt hash in PHC-like text form (infra/passwords.ts). */
  passwordHash: text('password_hash').notNull(),
  role: userRole('role').notNull(),
  disabled: boolean('disabled').notNull().default(false),
  createdAt: createdAt(),
  lastLoginAt: timestamp('last_login_at', { withTimezone: true }),
});
export type User = typeof usersTable.$inferSelect;

export const sessionsTable = pgTable(
  'sessions',
  {
    /** SHA-256 of the session cookie value; the cookie itself is never stored. */
    idHash: text('id_hash').primaryKey(),
    userId: uuid('user_id').notNull().references(() => usersTable.id, { onDelete: 'cascade' }),
    csrfToken: text('csrf_token').notNull(),
    createdAt: createdAt(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    ip: text('ip'),
    userAgent: text('user_agent'),
  },
  (t) => [index('sessions_user_idx').on(t.userId), index('sessions_expires_idx').on(t.expiresAt)],
);
export type Session = typeof sessionsTable.$inferSelect;

export const apiTokensTable = pgTable(
  'api_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id').notNull().references(() => usersTable.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** SHA-256 of the token; the token is shown once at creation. */
    tokenHash: text('token_hash').notNull().unique(),
    /** First characters of the token, to recognise it in lists. */
    prefix: text('prefix').notNull(),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [index('api_tokens_user_idx').on(t.userId)],
);
export type ApiToken = typeof apiTokensTable.$inferSelect;

// ---------------------------------------------------------------------------------------------
// Fleet

export const encryptionMode = pgEnum('encryption_mode', ['repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2']);
export const dedupScope = pgEnum('dedup_scope', ['client', 'repository']);

export const repositoriesTable = pgTable(
  'repositories',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull().unique(),
    /** Absolute path on the storage host. */
    path: text('path').notNull(),
    /** Which storage host holds it; its activities run on the task queue `storage-<host>`. */
    storageHost: text('storage_host').notNull(),
    encryption: encryptionMode('encryption').notNull(),
    /** Borg's repository id (hex), from the repository config. */
    borgId: text('borg_id').notNull(),
    /** The key text (key file or repokey), sealed. Kept for keyfile modes, and as a copy for repokey. */
    keySealed: text('key_sealed').notNull(),
    passphraseSealed: text('passphrase_sealed').notNull(),
    createdAt: createdAt(),
    /** Figures of the last refresh (finalize, prune, check): whole repository, bytes. */
    stats: jsonb('stats').$type<RepositoryStats>(),
  },
  (t) => [uniqueIndex('repositories_host_path_idx').on(t.storageHost, t.path)],
);
export type Repository = typeof repositoriesTable.$inferSelect;
export interface RepositoryStats {
  archives: number;
  originalSize: number;
  compressedSize: number;
  uniqueSize: number;
  uniqueCompressedSize: number;
  updatedAt: string;
}

export const clientsTable = pgTable('clients', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  host: text('host').notNull(),
  port: integer('port').notNull().default(22),
  sshUser: text('ssh_user').notNull().default('root'),
  /** Pinned on first contact ("type base64"); a different key is refused. */
  hostKey: text('host_key'),
  hostKeyFingerprint: text('host_key_fingerprint'),
  paths: jsonb('paths').$type<string[]>().notNull(),
  excludes: jsonb('excludes').$type<string[]>().notNull().default([]),
  borgPath: text('borg_path').notNull().default('borg'),
  /** borg's --compression spec for this client's backups (validated in services/clients.ts). */
  compression: text('compression').notNull().default('lz4'),
  dedupScope: dedupScope('dedup_scope').notNull().default('client'),
  /** Last version reported by `client test` or a backup; null = not seen / absent. */
  borgVersion: text('borg_version'),
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
export type Client = typeof clientsTable.$inferSelect;

export interface RetentionRules {
  keepWithin?: string;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export const policiesTable = pgTable(
  'policies',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull().unique(),
    clientId: uuid('client_id').notNull().references(() => clientsTable.id, { onDelete: 'cascade' }),
    repositoryId: uuid('repository_id').notNull().references(() => repositoriesTable.id, { onDelete: 'cascade' }),
    backupCrons: jsonb('backup_crons').$type<string[]>().notNull(),
    timezone: text('timezone').notNull().default('UTC'),
    retention: jsonb('retention').$type<RetentionRules>().notNull().default({}),
    checkCrons: jsonb('check_crons').$type<string[]>().notNull().default([]),
    checkVerifyData: boolean('check_verify_data').notNull().default(false),
    /** Extra prune runs (a prune also follows every successful scheduled backup). */
    pruneCrons: jsonb('prune_crons').$type<string[]>().notNull().default([]),
    /** A client with no successful backup for this long is stale (dashboard, alerts). */
    staleAfterHours: integer('stale_after_hours').notNull().default(36),
    paused: boolean('paused').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('policies_client_idx').on(t.clientId), index('policies_repository_idx').on(t.repositoryId)],
);
export type Policy = typeof policiesTable.$inferSelect;

// ---------------------------------------------------------------------------------------------
// Jobs

export const jobKind = pgEnum('job_kind', ['backup', 'restore', 'prune', 'check']);
export const jobState = pgEnum('job_state', ['running', 'succeeded', 'failed', 'violation', 'cancelled']);

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
  },
  (t) => [
    uniqueIndex('jobs_repository_archive_idx').on(t.repositoryId, t.archiveName),
    index('jobs_client_created_idx').on(t.clientId, t.createdAt),
    index('jobs_state_created_idx').on(t.state, t.createdAt),
    index('jobs_created_idx').on(t.createdAt),
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

/** What the repository service prepared for a backup job: the job key and the fake manifest. */
export const jobKeysTable = pgTable('job_keys', {
  jobId: uuid('job_id').primaryKey().references(() => jobsTable.id, { onDelete: 'cascade' }),
  /** Borg key type byte of the job key (0x00 keyfile or 0x04 keyfile-blake2). */
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

// ---------------------------------------------------------------------------------------------
// Repository contents as the server knows them (read with the real key)

export const archivesTable = pgTable(
  'archives',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    repositoryId: uuid('repository_id').notNull().references(() => repositoriesTable.id, { onDelete: 'cascade' }),
    /** Borg's archive metadata object id (hex) in the real manifest. */
    borgId: text('borg_id').notNull(),
    name: text('name').notNull(),
    clientId: uuid('client_id').references(() => clientsTable.id, { onDelete: 'set null' }),
    jobId: uuid('job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
    /** Server-stamped time of the manifest entry; retention is judged by it, never by the client. */
    time: timestamp('time', { withTimezone: true }).notNull(),
    originalSize: bigint('original_size', { mode: 'number' }),
    compressedSize: bigint('compressed_size', { mode: 'number' }),
    deduplicatedSize: bigint('deduplicated_size', { mode: 'number' }),
    nfiles: bigint('nfiles', { mode: 'number' }),
    createdAt: createdAt(),
    /** Set when the archive leaves the manifest (prune, delete); the row stays for history. */
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('archives_repository_name_live_idx').on(t.repositoryId, t.name).where(sql`${t.deletedAt} is null`),
    index('archives_client_idx').on(t.clientId),
    check('archives_borg_id_hex', sql`${t.borgId} ~ '^[0-9a-f]{64}$'`),
  ],
);
export type Archive = typeof archivesTable.$inferSelect;

// ---------------------------------------------------------------------------------------------
// Checks, incidents and alerts (issue 6)

export const checkResult = pgEnum('check_result', ['ok', 'failed']);

/** One `borg check` of a repository: what `borgcube repo show` and the console report. */
export const repositoryChecksTable = pgTable(
  'repository_checks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    repositoryId: uuid('repository_id').notNull().references(() => repositoriesTable.id, { onDelete: 'cascade' }),
    jobId: uuid('job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
    result: checkResult('result').notNull(),
    verifyData: boolean('verify_data').notNull(),
    /** borg's exit code (0 ok, 1 problems found, 2 error, >128 killed). */
    exitCode: integer('exit_code'),
    /** The problems borg reported (its WARNING/ERROR lines), the first 100. */
    errors: jsonb('errors').$type<string[]>().notNull().default([]),
    errorCount: integer('error_count').notNull().default(0),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull(),
    finishedAt: timestamp('finished_at', { withTimezone: true }).notNull(),
    durationMs: integer('duration_ms').notNull(),
  },
  (t) => [index('repository_checks_repository_idx').on(t.repositoryId, t.finishedAt)],
);
export type RepositoryCheck = typeof repositoryChecksTable.$inferSelect;

export const alertChannelKind = pgEnum('alert_channel_kind', ['webhook', 'email']);

/** Where alerts go. The target is sealed: webhook URLs and SMTP URLs often carry credentials. */
export const alertChannelsTable = pgTable('alert_channels', {
  id: uuid('id').primaryKey().defaultRandom(),
  kind: alertChannelKind('kind').notNull(),
  /** What lists show: the webhook's origin, or the recipients and SMTP host — never a secret. */
  label: text('label').notNull(),
  /** AlertChannelTarget as JSON, sealed with the master key (context `alert-channel:<id>`). */
  targetSealed: text('target_sealed').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: createdAt(),
});
export type AlertChannel = typeof alertChannelsTable.$inferSelect;

export const incidentKind = pgEnum('incident_kind', ['job-failed', 'violation', 'check-failed', 'stale']);

/**
 * Something wrong that someone should hear about once: at most one open incident per kind and
 * subject (`client:<id>`, `repository:<id>`, `policy:<id>`); it fires when opened and sends one
 * resolve notice when it clears.
 */
export const incidentsTable = pgTable(
  'incidents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: incidentKind('kind').notNull(),
    subjectKey: text('subject_key').notNull(),
    /** For humans, as it was when the incident opened (e.g. `client web`). */
    subject: text('subject').notNull(),
    clientId: uuid('client_id').references(() => clientsTable.id, { onDelete: 'set null' }),
    repositoryId: uuid('repository_id').references(() => repositoriesTable.id, { onDelete: 'set null' }),
    policyId: uuid('policy_id').references(() => policiesTable.id, { onDelete: 'set null' }),
    /** The job whose end opened it, if any. */
    jobId: uuid('job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
    summary: text('summary').notNull(),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull().defaultNow(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    resolveSummary: text('resolve_summary'),
    resolvedByJobId: uuid('resolved_by_job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
  },
  (t) => [
    uniqueIndex('incidents_open_idx').on(t.kind, t.subjectKey).where(sql`${t.resolvedAt} is null`),
    index('incidents_opened_idx').on(t.openedAt),
  ],
);
export type Incident = typeof incidentsTable.$inferSelect;

/** The JSON body of a webhook alert (and the content of an e-mail alert). */
export interface AlertPayload {
  kind: Incident['kind'] | 'test';
  state: 'firing' | 'resolved';
  subject: string;
  summary: string;
  /** The console page of the subject or job. */
  link: string;
  /** The job's workflow in the Temporal UI, when a job is involved. */
  temporalLink: string | null;
  /** When this notice was made (ISO 8601). */
  time: string;
  incidentId: string | null;
  openedAt: string | null;
  resolvedAt: string | null;
}

export const alertNotificationState = pgEnum('alert_notification_state', ['pending', 'sent', 'failed']);

/** One notice of one incident transition to one channel (an outbox: delivery is a workflow). */
export const alertNotificationsTable = pgTable(
  'alert_notifications',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    incidentId: uuid('incident_id').notNull().references(() => incidentsTable.id, { onDelete: 'cascade' }),
    channelId: uuid('channel_id').notNull().references(() => alertChannelsTable.id, { onDelete: 'cascade' }),
    event: text('event').$type<'firing' | 'resolved'>().notNull(),
    payload: jsonb('payload').$type<AlertPayload>().notNull(),
    state: alertNotificationState('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    createdAt: createdAt(),
    /** When its delivery workflow was started (null: not yet; the sweep picks it up). */
    dispatchedAt: timestamp('dispatched_at', { withTimezone: true }),
    sentAt: timestamp('sent_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('alert_notifications_once_idx').on(t.incidentId, t.channelId, t.event),
    index('alert_notifications_pending_idx').on(t.state, t.dispatchedAt),
  ],
);
export type AlertNotification = typeof alertNotificationsTable.$inferSelect;
