// Database factory. Composition roots call createDb(url) once; queries take `db` as first argument.
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import { fileURLToPath } from 'node:url';
import * as schema from './schema.js';

export type Db = NodePgDatabase<typeof schema>;
export interface DbHandle {
  db: Db;
  pool: pg.Pool;
  close(): Promise<void>;
}

// Compiled code runs from dist/db/, the migrations stay in the source tree's db/migrations.
export const migrationsFolder = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../db/migrations' : './migrations', import.meta.url));

export function createDb(url: string, opts: { max?: number; applicationName?: string } = {}): DbHandle {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: opts.applicationName ?? 'borgcube' });
  // An idle client that loses its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const db = drizzle(pool, { schema });
  return { db, pool, close: () => pool.end() };
}

/**
 * Runs `fn` in a transaction that holds an advisory lock named `key`: callers with the same key
 * run one after the other, across every process that shares the database. `fn` must run its
 * queries on the `db` it is given (the transaction): the lock holds one pooled connection, and
 * queries on others could wait for a connection that the waiting lock holders have taken.
 */
export async function withAdvisoryLock<T>(db: Db, key: string, fn: (tx: Db) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${key}))`);
    return fn(tx);
  });
}

export async function applyMigrations(db: Db): Promise<void> {
  await migrate(db, { migrationsFolder });
}

/** Creates the database named in `url` if it does not exist (connects to the `postgres` database). */
export async function ensureDatabase(url: string): Promise<boolean> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name)) throw new Error(`database name ${JSON.stringify(name)} is not a plain identifier`);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    const r = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (r.rowCount) return false;
    await client.query(`create database "${name}"`);
    return true;
  } finally {
    await client.end();
  }
}

/** A round trip to PostgreSQL: what the health check asks of the database. */
export async function pingDb(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}
