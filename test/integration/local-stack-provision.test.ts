// `npm start` provisioning against a temporary data dir and database: the layout's owners and
// modes, the keys, the sshd config, BorgCube's own PostgreSQL role, and that a second run changes
// nothing (and repairs drift).
import { chmodSync, chownSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { requireAccount } from '../../infra/accounts.js';
import { loadConfig } from '../../infra/config.js';
import { appRoleName, passwordFile } from '../../infra/local-stack/database-role.js';
import { freePort } from '../../infra/local-stack/net.js';
import { provision } from '../../infra/local-stack/provision.js';
import { run as run_, runChecked } from '../../infra/subprocess.js';
import { registerCleanup } from '../harness/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../harness/db.js';
import { projectRoot } from '../harness/paths.js';
import { makeTaggedDir } from '../harness/tags.js';

/** The role's database and role go when the test ends (the database first: the role owns it). */
function dropRoleAfter(tdb: TestDatabase) {
  registerCleanup(`role of ${tdb.name}`, async () => {
    await tdb.drop();
    const admin = new URL(tdb.url);
    admin.pathname = '/postgres';
    const c = new pg.Client({ connectionString: admin.toString() });
    await c.connect();
    try {
      await c.query(`drop role if exists "${appRoleName(tdb.name)}"`);
    } finally {
      await c.end();
    }
  });
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** What BorgCube's own role may and may not do, connected with the URL provisioning hands the processes. */
async function expectAppRole(url: string, database: string) {
  expect(new URL(url).username).toBe(appRoleName(database));
  const [me] = await query<{ rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean }>(url, 'select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = current_user');
  expect(me).toEqual({ rolsuper: false, rolcreatedb: false, rolcreaterole: false });
  // Its own tables: all of them, and it can write them.
  const foreign = await query<{ n: string }>(url, "select count(*) as n from pg_tables where schemaname in ('public', 'drizzle') and tableowner <> current_user");
  expect(Number(foreign[0]!.n)).toBe(0);
  // Privileges are checked even when no row matches.
  await query(url, 'update users set username = username where false');
  await query(url, 'delete from audit_events where false');
  // What a superuser could, it cannot.
  await expect(query(url, "copy (select 1) to program 'true'")).rejects.toThrow(/permission denied|must be superuser|pg_execute_server_program/);
  await expect(query(url, 'create database borgcube_role_probe')).rejects.toThrow(/permission denied/);
  await expect(query(url, 'create role borgcube_role_probe')).rejects.toThrow(/permission denied/);
}

function ownerAndMode(path: string) {
  const st = statSync(path);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

describe('provisioning', () => {
  it('builds the data dir layout, the database and sshd config, and is idempotent', async () => {
    const tmp = makeTaggedDir('provision');
    registerCleanup('provision temp dir', () => rmSync(tmp, { recursive: true, force: true }));
    const dataDir = join(tmp, 'data');
    const tdb = await createTestDatabase({ migrate: false });
    dropRoleAfter(tdb);
    const config = loadConfig({ ...process.env, BORGCUBE_DATA_DIR: dataDir, DATABASE_URL: tdb.url, BORGCUBE_SSH_PORT: String(await freePort()), BORGCUBE_ADMIN_PASSWORD: '' });
    const run = async () => {
      const lines: string[] = [];
      // The machine-wide steps (apt, PostgreSQL/Redis, the Temporal CLI) are npm test's own business.
      const result = await provision(config, { mode: 'test', projectDir: projectRoot, skip: ['packages', 'services', 'temporal-cli'], print: (l) => lines.push(l) });
      return { result, lines };
    };

    const first = await run();
    expect(first.result.admin).toMatchObject({ created: true, username: 'admin' });
    expect(first.result.admin?.password).toMatch(/.{12,}/);
    expect(first.lines.join('\n')).toMatch(/applied 1 migration|applied \d+ migration/);

    const storage = requireAccount(config.accounts.storage);
    const proxy = requireAccount(config.accounts.proxy);
    const p = config.paths;
    expect(ownerAndMode(dataDir)).toEqual({ uid: 0, gid: 0, mode: 0o711 });
    expect(ownerAndMode(p.masterKey)).toEqual({ uid: storage.uid, gid: storage.gid, mode: 0o600 });
    expect(statSync(p.masterKey).size).toBe(32);
    // The storage worker pushes job folders to clients: it reads the server's key through its group.
    expect(ownerAndMode(config.ssh.keyPath)).toEqual({ uid: 0, gid: storage.gid, mode: 0o640 });
    expect(ownerAndMode(p.sshDir)).toEqual({ uid: 0, gid: storage.gid, mode: 0o750 });
    expect(readFileSync(`${config.ssh.keyPath}.pub`, 'utf8')).toMatch(/^ssh-ed25519 /);
    expect(ownerAndMode(p.sshdDir)).toEqual({ uid: 0, gid: 0, mode: 0o711 });
    for (const d of [p.temporalDir, p.logDir, p.adminBorgDir]) expect(ownerAndMode(d)).toEqual({ uid: 0, gid: 0, mode: 0o700 });
    expect(ownerAndMode(p.runDir)).toEqual({ uid: storage.uid, gid: proxy.gid, mode: 0o2750 });
    expect(ownerAndMode(p.storageDir)).toEqual({ uid: storage.uid, gid: storage.gid, mode: 0o700 });
    expect(proxy.shell).toBe('/bin/sh');
    expect(readFileSync('/etc/shadow', 'utf8')).toMatch(new RegExp(`^${proxy.name}:\\*:`, 'm'));
    expect(ownerAndMode(passwordFile(dataDir))).toEqual({ uid: 0, gid: 0, mode: 0o600 });
    await expectAppRole(first.result.databaseUrl!, tdb.name);
    await runChecked('/usr/sbin/sshd', ['-t', '-f', first.result.sshdConfig!]);
    expect(readFileSync(first.result.sshdConfig!, 'utf8')).toContain(`Port ${config.ssh.port}`);

    const masterKey = readFileSync(p.masterKey);
    const second = await run();
    expect(second.result.admin).toMatchObject({ created: false });
    expect(second.lines.join('\n')).not.toMatch(/created|fixed|applied/);
    expect(readFileSync(p.masterKey).equals(masterKey)).toBe(true);
    expect(second.result.ms).toBeLessThan(10_000);

    // Run by hand once users exist, `borgcube first-admin` refuses in one clear line.
    const again = await run_(process.execPath, [join(projectRoot, 'bin/borgcube'), 'first-admin'], { env: { ...process.env, DATABASE_URL: tdb.url, BORGCUBE_DATA_DIR: dataDir }, timeoutMs: 60_000 });
    expect(again.code).toBe(2);
    expect(again.stderr.toString()).toMatch(/^borgcube: console users exist already/);

    // Drift is repaired, and said so.
    chmodSync(dataDir, 0o755);
    chownSync(p.masterKey, 0, 0);
    chmodSync(p.runDir, 0o777);
    const third = await run();
    expect(third.lines.join('\n')).toMatch(/fixed/);
    expect(ownerAndMode(dataDir).mode).toBe(0o711);
    expect(ownerAndMode(p.masterKey)).toEqual({ uid: storage.uid, gid: storage.gid, mode: 0o600 });
    expect(ownerAndMode(p.runDir).mode).toBe(0o2750);
  });

  it('hands a database that exists already (tables of the superuser) to BorgCube\'s own role', async () => {
    const tmp = makeTaggedDir('provision');
    registerCleanup('provision temp dir', () => rmSync(tmp, { recursive: true, force: true }));
    const dataDir = join(tmp, 'data');
    // Migrated as the administrator, as `npm start` did before it had a role of its own.
    const tdb = await createTestDatabase({ migrate: true });
    dropRoleAfter(tdb);
    const config = loadConfig({ ...process.env, BORGCUBE_DATA_DIR: dataDir, DATABASE_URL: tdb.url, BORGCUBE_SSH_PORT: String(await freePort()), BORGCUBE_ADMIN_PASSWORD: '' });
    const lines: string[] = [];
    const result = await provision(config, { mode: 'test', projectDir: projectRoot, skip: ['packages', 'services', 'temporal-cli'], print: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/handed \d+ existing/);
    expect(lines.join('\n')).toMatch(/schema up to date/);
    await expectAppRole(result.databaseUrl!, tdb.name);
  });

  it('uses a DATABASE_URL that is no superuser as it is (a deployment that brings its own role)', async () => {
    const tmp = makeTaggedDir('provision');
    registerCleanup('provision temp dir', () => rmSync(tmp, { recursive: true, force: true }));
    const dataDir = join(tmp, 'data');
    const tdb = await createTestDatabase({ migrate: false });
    const own = `${tdb.name}_own`;
    const admin = new URL(tdb.url);
    await query(admin.toString(), `create role "${own}" login password 'own-pw' nosuperuser; alter database "${tdb.name}" owner to "${own}"`);
    registerCleanup(`role ${own}`, async () => {
      await tdb.drop();
      admin.pathname = '/postgres';
      await query(admin.toString(), `drop role if exists "${own}"`);
    });
    const url = new URL(tdb.url);
    url.username = own;
    url.password = 'own-pw';
    const config = loadConfig({ ...process.env, BORGCUBE_DATA_DIR: dataDir, DATABASE_URL: url.toString(), BORGCUBE_SSH_PORT: String(await freePort()), BORGCUBE_ADMIN_PASSWORD: '' });
    const lines: string[] = [];
    const result = await provision(config, { mode: 'test', projectDir: projectRoot, skip: ['packages', 'services', 'temporal-cli'], print: (l) => lines.push(l) });
    expect(result.databaseUrl).toBe(url.toString());
    expect(lines.join('\n')).toMatch(new RegExp(`role ${own} ok; database ${tdb.name}, applied \\d+ migration`));
    expect(existsSync(passwordFile(dataDir))).toBe(false);
  });
});
