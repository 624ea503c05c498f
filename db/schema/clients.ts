// The machines BorgCube backs up over SSH.
import { integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { createdAt, updatedAt } from './columns.js';
import { dedupScope } from './repositories.js';

/** Per-client overrides of a job's cost bounds (DESIGN §4 inv. 11); absent keys use the defaults. */
export type ClientLimits = Partial<Record<string, number>>;

/** Commands run on the client around a job (typed and validated in services/). */
export type HookSet = Record<string, unknown>;

/** Database dumps streamed into the client's archives (typed and validated in services/). */
export type DumpSpec = Record<string, unknown>;

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
  limits: jsonb('limits').$type<ClientLimits>().notNull().default({}),
  hooks: jsonb('hooks').$type<HookSet>().notNull().default({}),
  dumps: jsonb('dumps').$type<DumpSpec[]>().notNull().default([]),
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
export type Client = typeof clientsTable.$inferSelect;
