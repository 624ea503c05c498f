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

/** A connection to the server's `postgres` database, for work on whole databases (server restore). */
async function withServer<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const u = new URL(url);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString(), application_name: 'borgcube-setup' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function plainName(name: string): string {
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name)) throw new Error(`database name ${JSON.stringify(name)} is not a plain identifier`);
  return `"${name}"`;
}

export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/** Whether the URL's database is missing, holds no tables at all, or holds some (and how many BorgCube rows of note). */
export async function inspectDatabase(url: string): Promise<{ exists: boolean; tables: number }> {
  const name = databaseNameOf(url);
  const exists = await withServer(url, async (c) => Boolean((await c.query('select 1 from pg_database where datname = $1', [name])).rowCount));
  if (!exists) return { exists, tables: 0 };
  const client = new pg.Client({ connectionString: url, application_name: 'borgcube-setup' });
  await client.connect();
  try {
    const r = await client.query<{ n: string }>("select count(*) as n from pg_tables where schemaname not in ('pg_catalog', 'information_schema')");
    return { exists, tables: Number(r.rows[0]?.n ?? 0) };
  } finally {
    await client.end();
  }
}

export async function createDatabase(url: string, name: string): Promise<void> {
  await withServer(url, (c) => c.query(`create database ${plainName(name)}`));
}

export async function renameDatabase(url: string, from: string, to: string): Promise<void> {
  await withServer(url, (c) => c.query(`alter database ${plainName(from)} rename to ${plainName(to)}`));
}

export async function dropDatabase(url: string, name: string): Promise<void> {
  await withServer(url, (c) => c.query(`drop database if exists ${plainName(name)}`));
}
