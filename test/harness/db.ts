// A fresh PostgreSQL database per test file (or per test), migrated like production, dropped
// afterwards. The server is the one of DATABASE_URL (npm test exports it; default 127.0.0.1:5432).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations, createDb, type DbHandle } from '../../db/client.js';
import { loadConfig } from '../../infra/config.js';
import { registerCleanup } from './cleanup.js';
import { dropTestDatabase } from './leftovers.js';
import { databasePrefix } from './tags.js';

export interface TestDatabase {
  name: string;
  /** Connection URL of the new database (for processes under test, e.g. DATABASE_URL). */
  url: string;
  handle: DbHandle;
  /** Closes the handle and drops the database. Idempotent; also runs after the file's tests. */
  drop(): Promise<void>;
}

/** The server's URL the test databases are created on. */
export function testDatabaseServerUrl(): string {
  return loadConfig().databaseUrl;
}

export async function createTestDatabase(opts: { migrate?: boolean; max?: number } = {}): Promise<TestDatabase> {
  const serverUrl = testDatabaseServerUrl();
  const name = `${databasePrefix}${process.pid}_${randomBytes(5).toString('hex')}`;
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = createDb(url.toString(), { max: opts.max ?? 4, applicationName: 'borgcube-test' });
  let closed = false;
  const drop = registerCleanup(`database ${name}`, async () => {
    if (!closed) {
      closed = true;
      await handle.close();
    }
    await dropTestDatabase(serverUrl, name);
  });
  try {
    if (opts.migrate ?? true) await applyMigrations(handle.db);
  } catch (err) {
    await drop();
    throw err;
  }
  return { name, url: url.toString(), handle, drop };
}
