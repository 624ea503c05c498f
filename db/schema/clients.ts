// The machines BorgCube backs up over SSH.
import { integer, jsonb, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { createdAt, updatedAt } from './columns.js';
import { dedupScope } from './repositories.js';

/**
 * A job's cost bounds (DESIGN §4 inv. 11). Crossing one of the proxy's is a violation; the log's
 * and events' are caps (what is past them is dropped, the job goes on). The defaults are far
 * above what an honest backup of a large host needs (README "Per-job bounds").
 */
export interface JobLimits {
  /** Objects a job may put (each costs the repository service 60–85 bytes of memory until the session ends). */
  putsPerJob: number;
  /** Bytes of objects a job may upload, as sent. */
  uploadBytesPerJob: number;
  /** Largest plaintext one object may decompress to (borg: fixed chunker blocks ≤ MAX_DATA_SIZE). */
  plaintextBytesPerObject: number;
  /** Bytes all of a job's objects may decompress to together. */
  plaintextBytesPerJob: number;
  /** Commits (borg: one per checkpoint and one at the end) a job may make within any minute. */
  commitsPerMinute: number;
  /** Log lines stored per job; then one line saying the rest was dropped. */
  logLinesPerJob: number;
  /** Bytes of log messages stored per job. */
  logBytesPerJob: number;
  /** Live events (log lines, progress) published per second per job; the rest are only stored. */
  eventsPerSecond: number;
}

/** Per-client overrides of a job's cost bounds; absent keys use JOB_LIMIT_DEFAULTS. */
export type ClientLimits = Partial<JobLimits>;

export const JOB_LIMIT_DEFAULTS: Readonly<JobLimits> = {
  putsPerJob: 20_000_000,
  uploadBytesPerJob: 16 * 2 ** 40,
  // borg's MAX_DATA_SIZE (constants.py): no chunk of buzhash (≤ 8 MiB) or the fixed chunker (≤ this) is larger.
  plaintextBytesPerObject: 20_971_479,
  plaintextBytesPerJob: 64 * 2 ** 40,
  commitsPerMinute: 30,
  logLinesPerJob: 200_000,
  logBytesPerJob: 64 * 2 ** 20,
  eventsPerSecond: 50,
};

/** A client's limits with the defaults filled in (unknown keys of an old row are ignored). */
export function jobLimitsOf(limits: ClientLimits | null | undefined): JobLimits {
  const out = { ...JOB_LIMIT_DEFAULTS };
  for (const k of Object.keys(out) as Array<keyof JobLimits>) {
    const v = limits?.[k];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) out[k] = v;
  }
  return out;
}

/** One command an admin set to run on the client around a backup (validated in services/hooks.ts). */
export interface Hook {
  /** Run as typed by `sh -c` on the client, as the SSH login account. */
  command: string;
  /** Killed (its whole process group) after this long; the default when absent. */
  timeoutSeconds?: number;
}

/** Commands run on the client around a backup: before it, after a failure, and always after it. */
export interface HookSet {
  before?: Hook[];
  onFailure?: Hook[];
  after?: Hook[];
}

/**
 * How a dump tool reaches its database. Credentials are never here: they come from the client's
 * own configuration (~/.pgpass, ~/.my.cnf or a defaults file, a socket, `sudo -u`), so that no
 * password is in BorgCube's database or on a command line.
 */
export interface DumpConnection {
  /** Host name, address, or (PostgreSQL) socket folder; the tool's default when absent. */
  host?: string;
  port?: number;
  user?: string;
  /** Run the tool as this account through `sudo -n -u` (e.g. postgres, for peer authentication). */
  sudoUser?: string;
}

/** A PostgreSQL database (`pg_dump`) or the whole cluster (`pg_dumpall`, plain format only). */
export interface PostgresqlDump extends DumpConnection {
  kind: 'postgresql';
  database?: string;
  all?: boolean;
  format: 'plain' | 'custom';
}

/** A MySQL/MariaDB database (`mysqldump --single-transaction`). */
export interface MysqlDump extends DumpConnection {
  kind: 'mysql';
  database: string;
  /** A MySQL option file on the client holding the credentials (passed as --defaults-file). */
  defaultsFile?: string;
}

/** An SQLite database file (`sqlite3 FILE .dump`). */
export interface SqliteDump {
  kind: 'sqlite';
  path: string;
}

/**
 * A database dump streamed into each of the client's archives as one entry (validated in
 * services/dumps.ts, which also names the entry).
 */
export type DumpSpec = PostgresqlDump | MysqlDump | SqliteDump;

/**
 * When a job deploys the server's borg into the job folder: `if-missing` (the client has none),
 * `if-unsupported` (none, or a version the proxy does not support), `always`, `never` (refuse).
 */
export const borgDeploy = pgEnum('borg_deploy', ['if-missing', 'if-unsupported', 'always', 'never']);

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
  borgDeploy: borgDeploy('borg_deploy').notNull().default('if-missing'),
  /** borg's --compression spec for this client's backups (validated in services/clients.ts). */
  compression: text('compression').notNull().default('lz4'),
  dedupScope: dedupScope('dedup_scope').notNull().default('client'),
  /** Last version reported by `client test` or a backup; null = not seen / absent. */
  borgVersion: text('borg_version'),
  limits: jsonb('limits').$type<ClientLimits>().notNull().default({}),
  hooks: jsonb('hooks').$type<HookSet>().notNull().default({}),
  dumps: jsonb('dumps').$type<DumpSpec[]>().notNull().default([]),
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
export type Client = typeof clientsTable.$inferSelect;
