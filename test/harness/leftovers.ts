// Removes what earlier, crashed test or bench runs left behind: tagged users, tagged temp folders
// with their processes (sshd, Temporal, a stack), tagged databases — only those whose owning
// process is gone.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { databasePattern, dirPrefix, isAlive, processMatches, readOwner } from './tags.js';
import { listTestUsers, removeTestUser } from './users.js';

/** Ends a tagged process (and its process group when it leads one) if it is still the same program. */
export function killTaggedProcess(pid: number, marker: string): boolean {
  if (!processMatches(pid, marker)) return false;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      /* not a group leader, or gone */
    }
  }
  return true;
}

export async function dropTestDatabase(adminUrl: string, name: string): Promise<void> {
  if (!databasePattern.test(name)) throw new Error(`${name} is not a test database`);
  const u = new URL(adminUrl);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    await client.query(`drop database if exists "${name}" with (force)`);
  } finally {
    await client.end();
  }
}

async function staleDatabases(adminUrl: string): Promise<string[]> {
  const u = new URL(adminUrl);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    const r = await client.query<{ datname: string }>("select datname from pg_database where datname like 'borgcube\\_test\\_%'");
    return r.rows.map((row) => row.datname).filter((n) => {
      const m = databasePattern.exec(n);
      return m && !isAlive(Number(m[1]));
    });
  } finally {
    await client.end();
  }
}

/** Returns one line per removed leftover. */
export async function sweepLeftovers(opts: { databaseUrl: string }): Promise<string[]> {
  const removed: string[] = [];
  const tagged = readdirSync(tmpdir()).filter((d) => d.startsWith(dirPrefix));
  const live = tagged.filter((d) => {
    const owner = readOwner(join(tmpdir(), d));
    return owner !== undefined && isAlive(owner.owner);
  });
  for (const dir of tagged) {
    const path = join(tmpdir(), dir);
    const owner = readOwner(path);
    if (owner && isAlive(owner.owner)) continue;
    if (!owner) {
      // Without owner.json: a sibling of a live folder (`<tagged dir>-repos`) belongs to it; any
      // other is either being created right now or from a crash, and age decides.
      if (live.some((l) => dir.startsWith(l))) continue;
      if (Date.now() - statSync(path).mtimeMs < 10 * 60_000) continue;
    }
    for (const p of owner?.processes ?? []) if (killTaggedProcess(p.pid, p.marker)) removed.push(`process ${p.pid} (${p.marker})`);
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  for (const u of listTestUsers()) {
    if (isAlive(u.owner)) continue;
    await removeTestUser(u.name);
    removed.push(`user ${u.name}`);
  }
  try {
    for (const name of await staleDatabases(opts.databaseUrl)) {
      await dropTestDatabase(opts.databaseUrl, name);
      removed.push(`database ${name}`);
    }
  } catch (err) {
    // No PostgreSQL here: tests that need one fail on their own with a clearer message.
    removed.push(`(databases not checked: ${err instanceof Error ? err.message : String(err)})`);
  }
  return removed;
}
