// Storage hosts (DESIGN.md §2): each storage worker registers its row when it starts and keeps
// last_seen_at fresh while it runs; the console and the job reservation read them.
import { asc, eq, getTableColumns, sql } from 'drizzle-orm';
import type { Db } from '../client.js';
import { storageHostsTable, type StorageHost } from '../schema.js';

/** The row of a storage worker that starts: created, or its address updated; seen now. */
export async function registerStorageHost(db: Db, host: { name: string; sshHost: string; sshPort: number }): Promise<StorageHost> {
  const rows = await db
    .insert(storageHostsTable)
    .values({ ...host, lastSeenAt: sql`now()` })
    .onConflictDoUpdate({ target: storageHostsTable.name, set: { sshHost: host.sshHost, sshPort: host.sshPort, lastSeenAt: sql`now()` } })
    .returning();
  return rows[0]!;
}

/** The storage worker is alive (its periodic report). */
export async function touchStorageHost(db: Db, name: string): Promise<void> {
  await db.update(storageHostsTable).set({ lastSeenAt: sql`now()` }).where(eq(storageHostsTable.name, name));
}

/** A storage host with the seconds since its worker last reported, by the database's clock (the one last_seen_at is written with). */
export type StorageHostRow = StorageHost & { silentSeconds: number | null };

const silentSeconds = sql<number | null>`extract(epoch from now() - ${storageHostsTable.lastSeenAt})::float8`;

export async function listStorageHosts(db: Db): Promise<StorageHostRow[]> {
  return db.select({ ...getTableColumns(storageHostsTable), silentSeconds }).from(storageHostsTable).orderBy(asc(storageHostsTable.name));
}

export async function findStorageHost(db: Db, name: string): Promise<StorageHostRow | undefined> {
  const rows = await db.select({ ...getTableColumns(storageHostsTable), silentSeconds }).from(storageHostsTable).where(eq(storageHostsTable.name, name));
  return rows[0];
}

/** Sets the host's own backup limit (null: the server default); the row, or undefined when the host never registered. */
export async function setStorageHostBackupLimit(db: Db, name: string, max: number | null): Promise<StorageHost | undefined> {
  const rows = await db.update(storageHostsTable).set({ maxConcurrentBackups: max }).where(eq(storageHostsTable.name, name)).returning();
  return rows[0];
}
