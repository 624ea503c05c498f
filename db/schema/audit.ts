// What people did that reads data out of the server (downloads of archive contents, started
// restores): who, when, what. Kept for the record; never used to decide anything.
import { index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { usersTable } from './users.js';

export const auditEventsTable = pgTable(
  'audit_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    time: timestamp('time', { withTimezone: true }).notNull().defaultNow(),
    userId: uuid('user_id').references(() => usersTable.id, { onDelete: 'set null' }),
    /** The user's name at the time (the row outlives the user). */
    actor: text('actor').notNull(),
    /** e.g. `archive.download`, `restore.start`. */
    action: text('action').notNull(),
    /** What it was done to, e.g. the archive's name. */
    target: text('target').notNull(),
    detail: jsonb('detail').$type<Record<string, unknown>>(),
  },
  (t) => [index('audit_events_time_idx').on(t.time)],
);
export type AuditEvent = typeof auditEventsTable.$inferSelect;
