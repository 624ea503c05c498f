// Repository queries. Public reads never select the sealed key and passphrase; only
// getRepositorySecrets does, for the code paths that run borg with the real key.
import { asc, eq, getTableColumns } from 'drizzle-orm';
import type { Db } from '../client.js';
import { repositoriesTable, type Repository } from '../schema.js';

const { keySealed: _k, passphraseSealed: _p, ...publicColumns } = getTableColumns(repositoriesTable);
export type RepositoryRow = Omit<Repository, 'keySealed' | 'passphraseSealed'>;

export async function listRepositories(db: Db): Promise<RepositoryRow[]> {
  return db.select(publicColumns).from(repositoriesTable).orderBy(asc(repositoriesTable.name));
}

export async function findRepositoryByName(db: Db, name: string): Promise<RepositoryRow | undefined> {
  const rows = await db.select(publicColumns).from(repositoriesTable).where(eq(repositoriesTable.name, name));
  return rows[0];
}

export async function findRepositoryById(db: Db, id: string): Promise<RepositoryRow | undefined> {
  const rows = await db.select(publicColumns).from(repositoriesTable).where(eq(repositoriesTable.id, id));
  return rows[0];
}

export async function findRepositoryByPath(db: Db, storageHost: string, path: string): Promise<RepositoryRow | undefined> {
  const rows = await db.select(publicColumns).from(repositoriesTable).where(eq(repositoriesTable.path, path));
  return rows.find((r) => r.storageHost === storageHost);
}

export async function insertRepository(db: Db, row: typeof repositoriesTable.$inferInsert): Promise<RepositoryRow> {
  const rows = await db.insert(repositoriesTable).values(row).returning(publicColumns);
  return rows[0]!;
}

export async function updateRepository(db: Db, id: string, patch: Pick<Partial<Repository>, 'maxConcurrentBackups'>): Promise<RepositoryRow | undefined> {
  return (await db.update(repositoriesTable).set(patch).where(eq(repositoriesTable.id, id)).returning(publicColumns))[0];
}

export async function updateRepositoryStats(db: Db, id: string, stats: Repository['stats']): Promise<void> {
  await db.update(repositoriesTable).set({ stats }).where(eq(repositoriesTable.id, id));
}

/** The sealed secrets of one repository (open them with the master key and the contexts below). */
export async function getRepositorySecrets(db: Db, id: string): Promise<Pick<Repository, 'keySealed' | 'passphraseSealed'> | undefined> {
  const rows = await db
    .select({ keySealed: repositoriesTable.keySealed, passphraseSealed: repositoriesTable.passphraseSealed })
    .from(repositoriesTable)
    .where(eq(repositoriesTable.id, id));
  return rows[0];
}

export const repositorySecretContext = {
  key: (id: string) => `repository:${id}:key`,
  passphrase: (id: string) => `repository:${id}:passphrase`,
};
