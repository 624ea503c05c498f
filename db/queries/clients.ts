import { asc, eq } from 'drizzle-orm';
import type { Db } from '../client.js';
import { clientsTable, type Client } from '../schema.js';

export async function listClients(db: Db): Promise<Client[]> {
  return db.select().from(clientsTable).orderBy(asc(clientsTable.name));
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

export async function deleteClient(db: Db, id: string): Promise<boolean> {
  return (await db.delete(clientsTable).where(eq(clientsTable.id, id)).returning({ id: clientsTable.id })).length > 0;
}
