// Sessions and API tokens. Only hashes of the secrets are stored and looked up here; the cookie
// value and the token text never reach the database.
import { and, desc, eq, getTableColumns, gt, isNull, lt, or } from 'drizzle-orm';
import type { Db } from '../client.js';
import { apiTokensTable, sessionsTable, usersTable, type ApiToken, type Session } from '../schema.js';
import type { UserRow } from './users.js';

const { passwordHash: _h, ...userColumns } = getTableColumns(usersTable);
const { tokenHash: _t, ...tokenColumns } = getTableColumns(apiTokensTable);
export type ApiTokenRow = Omit<ApiToken, 'tokenHash'>;

export async function insertSession(db: Db, row: typeof sessionsTable.$inferInsert): Promise<Session> {
  return (await db.insert(sessionsTable).values(row).returning())[0]!;
}

/** The unexpired session with this hash and its user (without the password hash). */
export async function findLiveSession(db: Db, idHash: string, now: Date): Promise<{ session: Session; user: UserRow } | undefined> {
  const rows = await db
    .select({ session: sessionsTable, user: userColumns })
    .from(sessionsTable)
    .innerJoin(usersTable, eq(usersTable.id, sessionsTable.userId))
    .where(and(eq(sessionsTable.idHash, idHash), gt(sessionsTable.expiresAt, now)));
  return rows[0];
}

export async function touchSession(db: Db, idHash: string, lastSeenAt: Date, expiresAt: Date): Promise<void> {
  await db.update(sessionsTable).set({ lastSeenAt, expiresAt }).where(eq(sessionsTable.idHash, idHash));
}

export async function deleteSession(db: Db, idHash: string): Promise<void> {
  await db.delete(sessionsTable).where(eq(sessionsTable.idHash, idHash));
}

/**
 * Everything that lets a user in without their password: every session is deleted and every API
 * token revoked (kept, listed as revoked). Run it in the transaction that changes the password or
 * disables the user, so that no request sees the new state with the old credentials still valid.
 */
export async function revokeUserAccess(db: Db, userId: string, at: Date): Promise<void> {
  await db.delete(sessionsTable).where(eq(sessionsTable.userId, userId));
  await db.update(apiTokensTable).set({ revokedAt: at }).where(and(eq(apiTokensTable.userId, userId), isNull(apiTokensTable.revokedAt)));
}

export async function deleteExpiredSessions(db: Db, now: Date): Promise<number> {
  return (await db.delete(sessionsTable).where(lt(sessionsTable.expiresAt, now)).returning({ id: sessionsTable.idHash })).length;
}

export async function insertApiToken(db: Db, row: typeof apiTokensTable.$inferInsert): Promise<ApiTokenRow> {
  return (await db.insert(apiTokensTable).values(row).returning(tokenColumns))[0]!;
}

/** A usable token: not revoked, not expired; with its user. */
export async function findLiveApiToken(db: Db, tokenHash: string, now: Date): Promise<{ token: ApiTokenRow; user: UserRow } | undefined> {
  const rows = await db
    .select({ token: tokenColumns, user: userColumns })
    .from(apiTokensTable)
    .innerJoin(usersTable, eq(usersTable.id, apiTokensTable.userId))
    .where(and(eq(apiTokensTable.tokenHash, tokenHash), isNull(apiTokensTable.revokedAt), or(isNull(apiTokensTable.expiresAt), gt(apiTokensTable.expiresAt, now))));
  return rows[0];
}

export async function touchApiToken(db: Db, id: string, at: Date): Promise<void> {
  await db.update(apiTokensTable).set({ lastUsedAt: at }).where(eq(apiTokensTable.id, id));
}

export async function listApiTokens(db: Db, userId: string): Promise<ApiTokenRow[]> {
  return db.select(tokenColumns).from(apiTokensTable).where(eq(apiTokensTable.userId, userId)).orderBy(desc(apiTokensTable.createdAt));
}

export async function revokeApiToken(db: Db, userId: string, id: string, at: Date): Promise<boolean> {
  const rows = await db
    .update(apiTokensTable)
    .set({ revokedAt: at })
    .where(and(eq(apiTokensTable.id, id), eq(apiTokensTable.userId, userId), isNull(apiTokensTable.revokedAt)))
    .returning({ id: apiTokensTable.id });
  return rows.length > 0;
}
