// Backup policies: which client goes to which repository, when, and what is kept.
import { boolean, index, integer, jsonb, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { createdAt, updatedAt } from './columns.js';
import { clientsTable, type HookSet } from './clients.js';
import { repositoriesTable } from './repositories.js';

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
    /** Hooks of this policy's backups, run in addition to the client's. */
    hooks: jsonb('hooks').$type<HookSet>().notNull().default({}),
    /** Random delay of each scheduled run, up to this (Temporal Schedule jitter); null = the server's default. */
    scheduleJitterSeconds: integer('schedule_jitter_seconds'),
    paused: boolean('paused').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('policies_client_idx').on(t.clientId), index('policies_repository_idx').on(t.repositoryId)],
);
export type Policy = typeof policiesTable.$inferSelect;
