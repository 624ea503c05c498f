// `borg check` runs of a repository.
import { boolean, index, integer, jsonb, pgEnum, pgTable, timestamp, uuid } from 'drizzle-orm/pg-core';
import { jobsTable } from './jobs.js';
import { repositoriesTable } from './repositories.js';

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
