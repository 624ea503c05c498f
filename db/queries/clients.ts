import { and, asc, count, eq, gt, isNull, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../client.js';
import { clientsTable, type Client } from '../schema.js';

export async function listClients(db: Db): Promise<Client[]> {
  return db.select().from(clientsTable).orderBy(asc(clientsTable.name));
}

export interface ClientPageFilter {
  /** Names containing this text, case-insensitively (a literal: % and _ match themselves). */
  search?: string;
  /** Keyset pagination: names after this one, in the list's order. */
  after?: string;
  /** Rows at most; all when not given. */
  limit?: number;
}

function pageWhere(f: Omit<ClientPageFilter, 'limit'>): SQL | undefined {
  const where: SQL[] = [];
  if (f.search) where.push(sql`${clientsTable.name} ilike ${`%${f.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}`);
  if (f.after !== undefined) where.push(gt(clientsTable.name, f.after));
  return where.length ? and(...where) : undefined;
}

/** One page of clients by name (the unique name index walks it); `limit` + 1 rows tell the caller whether more follow. */
export async function listClientsPage(db: Db, f: ClientPageFilter): Promise<Client[]> {
  const q = db.select().from(clientsTable).where(pageWhere(f)).orderBy(asc(clientsTable.name));
  return f.limit === undefined ? q : q.limit(f.limit);
}

/** How many clients match the search (all of them without one). */
export async function countClients(db: Db, search?: string): Promise<number> {
  const r = await db.select({ n: count() }).from(clientsTable).where(pageWhere({ search }));
  return Number(r[0]?.n ?? 0);
}

/** The first `limit` client names in order: enough for a drop-down, bounded for a fleet of thousands. */
export async function listClientNames(db: Db, limit: number): Promise<string[]> {
  return (await db.select({ name: clientsTable.name }).from(clientsTable).orderBy(asc(clientsTable.name)).limit(limit)).map((r) => r.name);
}

export async function findClientByName(db: Db, name: string): Promise<Client | undefined> {
  return (await db.select().from(clientsTable).where(eq(clientsTable.name, name)))[0];
}

export async function findClientById(db: Db, id: string): Promise<Client | undefined> {
  return (await db.select().from(clientsTable).where(eq(clientsTable.id, id)))[0];
}

export async function insertClient(db: Db, row: typeof clientsTable.$inferInsert): Promise<Client> {
  return (await db.insert(clientsTable).values(row).returning())[0]!;
}

export async function updateClient(db: Db, id: string, patch: Partial<typeof clientsTable.$inferInsert>): Promise<Client | undefined> {
  return (await db.update(clientsTable).set({ ...patch, updatedAt: new Date() }).where(eq(clientsTable.id, id)).returning())[0];
}

/**
 * Pins a first-contact host key, only if the client still has no pinned key and still names the
 * host, port and user that presented it (an edit or another first contact may have come between
 * the connection's start and now). Undefined when the row no longer qualifies.
 */
export async function pinHostKey(db: Db, c: Pick<Client, 'id' | 'host' | 'port' | 'sshUser'>, key: string, fingerprint: string): Promise<Client | undefined> {
  return (
    await db
      .update(clientsTable)
      .set({ hostKey: key, hostKeyFingerprint: fingerprint, updatedAt: new Date() })
      .where(and(eq(clientsTable.id, c.id), isNull(clientsTable.hostKey), eq(clientsTable.host, c.host), eq(clientsTable.port, c.port), eq(clientsTable.sshUser, c.sshUser)))
      .returning()
  )[0];
}

export async function deleteClient(db: Db, id: string): Promise<boolean> {
  return (await db.delete(clientsTable).where(eq(clientsTable.id, id)).returning({ id: clientsTable.id })).length > 0;
}

/**
 * A job reached the client over SSH and asked its borg for its version: the same contact
 * `borgcube client test` records. Not an edit of the client, so updatedAt stays.
 */
export async function recordClientContact(db: Db, id: string, borgVersion: string | null): Promise<void> {
  await db.update(clientsTable).set({ lastSeenAt: new Date(), borgVersion }).where(eq(clientsTable.id, id));
}
