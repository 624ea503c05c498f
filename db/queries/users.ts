import { asc, eq, getTableColumns } from 'drizzle-orm';
import type { Db } from '../client.js';
import { usersTable, type User } from '../schema.js';

const { passwordHash: _h, ...publicColumns } = getTableColumns(usersTable);
export type UserRow = Omit<User, 'passwordHash'>;

export async function listUsers(db: Db): Promise<UserRow[]> {
  return db.select(publicColumns).from(usersTable).orderBy(asc(usersTable.username));
}

export async function findUserByName(db: Db, username: string): Promise<UserRow | undefined> {
  return (await db.select(publicColumns).from(usersTable).where(eq(usersTable.username, username)))[0];
}

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return (await db.select(publicColumns).from(usersTable).where(eq(usersTable.id, id)))[0];
}

/** Only for login: the one query that reads the password hash. */
export async function findUserCredentials(db: Db, username: string): Promise<User | undefined> {
  return (await db.select().from(usersTable).where(eq(usersTable.username, username)))[0];
}

export async function insertUser(db: Db, row: typeof usersTable.$inferInsert): Promise<UserRow> {
  return (await db.insert(usersTable).values(row).returning(publicColumns))[0]!;
}

export async function updateUser(db: Db, id: string, patch: Partial<typeof usersTable.$inferInsert>): Promise<UserRow | undefined> {
  return (await db.update(usersTable).set(patch).where(eq(usersTable.id, id)).returning(publicColumns))[0];
}

export async function deleteUser(db: Db, id: string): Promise<boolean> {
  return (await db.delete(usersTable).where(eq(usersTable.id, id)).returning({ id: usersTable.id })).length > 0;
}

export async function countUsers(db: Db): Promise<number> {
  return db.$count(usersTable);
}
