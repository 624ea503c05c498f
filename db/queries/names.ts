// Names of clients and repositories by id, in one query each: list views show names for pages of
// rows that reference few distinct ids.
import { inArray } from 'drizzle-orm';
import type { Db } from '../client.js';
import { clientsTable, repositoriesTable } from '../schema.js';

export async function clientNamesByIds(db: Db, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.select({ id: clientsTable.id, name: clientsTable.name }).from(clientsTable).where(inArray(clientsTable.id, [...new Set(ids)]));
  return new Map(rows.map((r) => [r.id, r.name]));
}

export async function repositoryNamesByIds(db: Db, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.select({ id: repositoriesTable.id, name: repositoriesTable.name }).from(repositoriesTable).where(inArray(repositoriesTable.id, [...new Set(ids)]));
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** Every client's name by id (the sweep links incidents of any client). */
export async function allClientNames(db: Db): Promise<Map<string, string>> {
  return new Map((await db.select({ id: clientsTable.id, name: clientsTable.name }).from(clientsTable)).map((c) => [c.id, c.name]));
}
