// Repository contents as the server knows them (read with the real key).
import { sql } from 'drizzle-orm';
import { bigint, check, index, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { clientsTable } from './clients.js';
import { jobsTable } from './jobs.js';
import { repositoriesTable } from './repositories.js';

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
