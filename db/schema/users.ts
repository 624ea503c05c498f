// People and access: users, their browser sessions and API tokens.
import { boolean, index, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';

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
