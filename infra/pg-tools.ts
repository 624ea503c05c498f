// PostgreSQL's own dump and restore programs (Debian's postgresql-client) for BorgCube's server
// backup. The connection comes from DATABASE_URL through libpq's PG* variables, never argv,
// where `ps` would show a password.
import { baseEnv, run, type RunResult } from './subprocess.js';

/** libpq's environment for a postgres:// URL (host, port, user, password, database, sslmode). */
export function libpqEnv(databaseUrl: string, database?: string): Record<string, string> {
  const u = new URL(databaseUrl);
  const env: Record<string, string> = {};
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname.replace(/^\[(.*)\]$/, '$1'));
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  env.PGDATABASE = database ?? decodeURIComponent(u.pathname.replace(/^\//, ''));
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  const host = u.searchParams.get('host');
  if (host) env.PGHOST = host;
  return env;
}

async function pgTool(program: string, args: string[], databaseUrl: string, database?: string): Promise<RunResult> {
  return run(program, args, { env: baseEnv({ ...libpqEnv(databaseUrl, database), PGAPPNAME: 'borgcube-server-backup' }), timeoutMs: 6 * 3600_000, maxOutput: 1024 * 1024 });
}

function failure(what: string, r: RunResult): Error {
  const lines = r.stderr.toString().split('\n').map((l) => l.trim()).filter(Boolean);
  return new Error(`${what} failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${lines.slice(-1)[0] ?? 'no message'}`);
}

/** `pg_dump --format=custom` of the URL's database into `file` (one snapshot of the whole database). */
export async function pgDump(databaseUrl: string, file: string): Promise<void> {
  const r = await pgTool('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', '--file', file], databaseUrl);
  if (r.code !== 0) throw failure('pg_dump', r);
}

/** Lists a custom-format dump's table of contents: fails on a file pg_restore cannot read. */
export async function pgRestoreList(file: string): Promise<void> {
  const r = await run('pg_restore', ['--list', file], { env: baseEnv(), timeoutMs: 600_000, maxOutput: 1024 });
  if (r.code !== 0) throw failure('pg_restore --list', r);
}

/** Restores a custom-format dump into `database` (empty), owned by the connecting user; stops at the first error. */
export async function pgRestore(databaseUrl: string, database: string, file: string): Promise<void> {
  const r = await pgTool('pg_restore', ['--exit-on-error', '--no-owner', '--no-privileges', '--single-transaction', '--dbname', database, file], databaseUrl, database);
  if (r.code !== 0) throw failure('pg_restore', r);
}

export async function pgToolVersion(program: 'pg_dump' | 'pg_restore'): Promise<string> {
  const r = await run(program, ['--version'], { env: baseEnv(), timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${program} is missing (install postgresql-client): ${r.stderr.toString().trim()}`);
  return r.stdout.toString().trim();
}
