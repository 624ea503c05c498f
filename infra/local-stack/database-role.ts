// BorgCube's own PostgreSQL role (DESIGN.md §5): the processes of the stack connect as a role that
// owns BorgCube's database and nothing else — no superuser, no CREATEDB/CREATEROLE — so a bug in
// any of them cannot become the server's superuser (`COPY … TO PROGRAM`, other databases, roles).
// DATABASE_URL stays the administrator's URL (it creates the role and the database); the role's
// password lives in the data dir, root-only (0600), and reaches the processes in their
// environment. A database that exists already (made by an earlier `npm start` as the superuser)
// is handed over: the database, the schemas and every table, sequence and view in them.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export interface AppRole {
  role: string;
  /** DATABASE_URL for the stack's processes: the role, its password, the same server and database. */
  url: string;
  changes: string[];
}

/** The role's name: one per database, so that stacks (and test stacks) on one server never share a password. */
export function appRoleName(database: string): string {
  const name = `${database}_app`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (name.length > 63) throw new Error(`database name too long for a role name: ${database}`);
  return name;
}

export function passwordFile(dataDir: string): string {
  return join(dataDir, 'database-password');
}

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

export async function ensureAppRole(adminUrl: string, dataDir: string): Promise<AppRole> {
  const changes: string[] = [];
  const database = decodeURIComponent(new URL(adminUrl).pathname.replace(/^\//, ''));
  if (!database) throw new Error('DATABASE_URL names no database');
  const role = appRoleName(database);
  // A DATABASE_URL that is no superuser (a deployment that brings its own role) is used as is.
  const self = await currentRole(adminUrl);
  if (!self.superuser) return { role: self.user, url: adminUrl, changes: [] };
  const file = passwordFile(dataDir);
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    changes.push(`created ${file}`);
  }
  const st = statSync(file);
  if (st.uid !== 0 || st.gid !== 0 || (st.mode & 0o777) !== 0o600) {
    chownSync(file, 0, 0);
    chmodSync(file, 0o600);
    changes.push(`fixed owner+mode of ${file}`);
  }
  const password = readFileSync(file, 'utf8').trim();

  const onServer = new URL(adminUrl);
  onServer.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: onServer.toString() });
  await admin.connect();
  try {
    const r = await admin.query<{ rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean }>('select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = $1', [role]);
    const pw = admin.escapeLiteral(password);
    if (!r.rows[0]) {
      await admin.query(`create role ${ident(role)} login nosuperuser nocreatedb nocreaterole noreplication password ${pw}`);
      changes.push(`created PostgreSQL role ${role}`);
    } else {
      // Kept in step with the file (which may have been replaced) without saying so each time.
      await admin.query(`alter role ${ident(role)} login nosuperuser nocreatedb nocreaterole noreplication password ${pw}`);
      const row = r.rows[0];
      if (row.rolsuper || row.rolcreatedb || row.rolcreaterole) changes.push(`took superuser/createdb/createrole from ${role}`);
    }
    const db = await admin.query<{ owner: string }>('select pg_get_userbyid(datdba) as owner from pg_database where datname = $1', [database]);
    if (!db.rows[0]) {
      await admin.query(`create database ${ident(database)} owner ${ident(role)}`);
      changes.push(`created database ${database} owned by ${role}`);
    } else if (db.rows[0].owner !== role) {
      await admin.query(`alter database ${ident(database)} owner to ${ident(role)}`);
      changes.push(`database ${database}: owner ${db.rows[0].owner} → ${role}`);
    }
  } finally {
    await admin.end();
  }
  const handedOver = await handOverObjects(adminUrl, role);
  if (handedOver) changes.push(`handed ${handedOver} existing table(s), sequence(s) and schema(s) to ${role}`);

  const url = new URL(adminUrl);
  url.username = role;
  url.password = password;
  return { role, url: url.toString(), changes };
}

async function currentRole(adminUrl: string): Promise<{ user: string; superuser: boolean }> {
  const onServer = new URL(adminUrl);
  onServer.pathname = '/postgres';
  const c = new pg.Client({ connectionString: onServer.toString() });
  await c.connect();
  try {
    const r = await c.query<{ user: string; rolsuper: boolean }>('select current_user as user, rolsuper from pg_roles where rolname = current_user');
    return { user: r.rows[0]!.user, superuser: r.rows[0]!.rolsuper };
  } finally {
    await c.end();
  }
}

/** BorgCube's schemas (public, drizzle) and what is in them, owned by the role. */
async function handOverObjects(adminUrl: string, role: string): Promise<number> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    let n = 0;
    const schemas = await client.query<{ name: string }>(
      "select nspname as name from pg_namespace where nspname = 'drizzle' and pg_get_userbyid(nspowner) <> $1",
      [role],
    );
    for (const s of schemas.rows) {
      await client.query(`alter schema ${ident(s.name)} owner to ${ident(role)}`);
      n++;
    }
    const rels = await client.query<{ schema: string; name: string; kind: string }>(
      `select n.nspname as schema, c.relname as name, c.relkind as kind from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname in ('public', 'drizzle') and c.relkind in ('r', 'p', 'S', 'v', 'm') and pg_get_userbyid(c.relowner) <> $1
       -- a sequence owned by a table column follows its table
       and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i') and d.classid = 'pg_class'::regclass and c.relkind = 'S')`,
      [role],
    );
    for (const r of rels.rows) {
      const what = r.kind === 'S' ? 'sequence' : r.kind === 'v' ? 'view' : r.kind === 'm' ? 'materialized view' : 'table';
      await client.query(`alter ${what} ${ident(r.schema)}.${ident(r.name)} owner to ${ident(role)}`);
      n++;
    }
    const types = await client.query<{ schema: string; name: string }>(
      `select n.nspname as schema, t.typname as name from pg_type t join pg_namespace n on n.oid = t.typnamespace
       where n.nspname = 'public' and t.typtype = 'e' and pg_get_userbyid(t.typowner) <> $1`,
      [role],
    );
    for (const t of types.rows) {
      await client.query(`alter type ${ident(t.schema)}.${ident(t.name)} owner to ${ident(role)}`);
      n++;
    }
    return n;
  } finally {
    await client.end();
  }
}
