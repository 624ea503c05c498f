// Issue 24 point 2 end to end on the harness (real sshd client hosts, Temporal, PostgreSQL, Redis,
// borg, the proxy) with the machine's real PostgreSQL and MariaDB and the sqlite3 CLI: a backup
// with dumps of each kind stores one entry per database beside the client's files; a restore
// streams an entry into a fresh database (or SQLite file) and the rows are there; a dump that
// fails (a database that does not exist, a tool the client does not have) fails the job with
// the tool's error on one line and leaves no archive and nothing on the client; a load that
// cannot run fails the restore the same way and loads nothing; a cancelled one drops what it made.
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../db/schema.js';
import { run } from '../../infra/subprocess.js';
import { addClient } from '../../services/clients.js';
import { jobLogTail } from '../../services/jobs.js';
import { backup, describeJob, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, gatedBorg, type ClientHost } from '../harness/client-host.js';
import { waitUntil } from '../harness/process.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

const tag = randomBytes(4).toString('hex');
const pgDb = `bcdump_${tag}`;
const myDb = `bcdump_${tag}`;
const ROWS = 500;

async function psql(db: string, sql: string): Promise<string> {
  const r = await run('psql', ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-c', sql], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`psql ${sql}: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

async function mysql(sql: string, db?: string): Promise<string> {
  const r = await run('mysql', ['-h', '127.0.0.1', '-u', 'root', '--batch', '--skip-column-names', ...(db ? [db] : []), '-e', sql], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`mysql ${sql}: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

const pgDatabases = async () => (await psql('postgres', `select datname from pg_database where datname like 'bcdump_${tag}%' order by 1`)).split('\n').filter(Boolean);

describe('database dumps', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let sqliteFile: string;
  let archive: string;
  const repo = 'r1';

  function expectNothingLeft(jobId: string) {
    expect(existsSync(host.path('.borgcube', 'jobs', jobId)), 'job folder left on the client').toBe(false);
    if (existsSync(host.path('.borgcube', 'jobs'))) expect(readdirSync(host.path('.borgcube', 'jobs'))).toEqual([]);
  }

  async function restoreDump(args: string[], expected: Job['state']): Promise<{ out: string; job: Job }> {
    const r = await stack.cli(['restore', archive, '--client', 'db', ...args, '--wait']);
    const id = r.out.split('\n')[0]!;
    expect(id, r.err).toMatch(/^[0-9a-f-]{36}$/);
    const job = await waitForJob(stack, id);
    if (job.state !== expected) throw new Error(`restore ended ${job.state} (${job.error}), expected ${expected}\n${await describeJob(stack, id)}`);
    expect(r.code).toBe(expected === 'succeeded' ? 0 : 1);
    expectNothingLeft(id);
    return { out: r.out, job };
  }

  const archiveNames = async () => (await expectCli(stack, ['borg', repo, '--', 'list', '--short'])).out.split('\n').filter(Boolean);

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/notes.txt': 'notes\n' } });
    await addClient(stack.deps, { name: 'db', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    await expectCli(stack, ['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`]);

    registerCleanup(`PostgreSQL databases bcdump_${tag}*`, async () => {
      for (const db of await pgDatabases()) await psql('postgres', `drop database if exists "${db}" with (force)`);
    });
    await psql('postgres', `create database ${pgDb}`);
    await psql(pgDb, `create table items(id int primary key, name text); insert into items select g, 'item ' || g from generate_series(1, ${ROWS}) g`);

    registerCleanup(`MariaDB databases bcdump_${tag}*`, async () => {
      for (const db of (await mysql(`show databases like 'bcdump\\_${tag}%'`)).split('\n').filter(Boolean)) await mysql(`drop database if exists \`${db}\``);
    });
    await mysql(`create database ${myDb}`);
    await mysql(`create table items(id int primary key, name text); insert into items select seq, concat('item ', seq) from seq_1_to_${ROWS}`, myDb);

    sqliteFile = host.path('app.db');
    const s = await run('sqlite3', [sqliteFile, `create table notes(id integer primary key, body text); insert into notes(body) values ('one'), ('two'), ('three');`]);
    expect(s.code, s.stderr.toString()).toBe(0);
    chownSync(sqliteFile, host.uid, host.gid);
  });
  afterAll(runCleanups);

  it('backs up PostgreSQL (plain and custom), MariaDB and SQLite dumps beside the files, one entry each', async () => {
    const conn = ['--db-host', '127.0.0.1'];
    await expectCli(stack, ['client', 'dumps', 'db', '--add-postgresql', pgDb, ...conn, '--db-user', 'postgres']);
    await expectCli(stack, ['client', 'dumps', 'db', '--add-postgresql', pgDb, '--format', 'custom', ...conn, '--db-user', 'postgres']);
    await expectCli(stack, ['client', 'dumps', 'db', '--add-mysql', myDb, ...conn, '--db-user', 'root']);
    const listed = await expectCli(stack, ['client', 'dumps', 'db', '--add-sqlite', sqliteFile]);
    expect(listed.out.trim().split('\n')).toEqual([
      `1. pgsql/${pgDb}.sql: PostgreSQL database ${pgDb}, plain format (host 127.0.0.1, user postgres)`,
      `2. pgsql/${pgDb}.dump: PostgreSQL database ${pgDb}, custom format (host 127.0.0.1, user postgres)`,
      `3. mysql/${myDb}.sql: MySQL database ${myDb} (host 127.0.0.1, user root)`,
      `4. sqlite/app.sql: SQLite file ${sqliteFile}`,
    ]);
    // Two entries of the same name are refused with one line, and nothing changes.
    const dup = await expectCli(stack, ['client', 'dumps', 'db', '--add-postgresql', pgDb, ...conn], 2);
    expect(dup.err.trim()).toBe(`borgcube: dumps: 4: dumps 1 and 5 would both be stored as pgsql/${pgDb}.sql`);
    // A name is data for the tool, never more: one that could read as an option or SQL is refused.
    const odd = await expectCli(stack, ['client', 'dumps', 'db', `--add-postgresql=-x' -c 'drop`], 2);
    expect(odd.err.trim()).toMatch(/^borgcube: dumps: 4\.database: a database name is /);
    expect((await expectCli(stack, ['client', 'dumps', 'db'])).out.trim().split('\n')).toHaveLength(4);

    const job = await backup(stack, 'db', repo);
    archive = job.archiveName!;
    expectNothingLeft(job.id);
    const list = await expectCli(stack, ['borg', repo, '--', 'list', '--format', '{type} {path}{NL}', `::${archive}`]);
    const entries = list.out.split('\n').filter(Boolean);
    for (const e of [`pgsql/${pgDb}.sql`, `pgsql/${pgDb}.dump`, `mysql/${myDb}.sql`, 'sqlite/app.sql']) expect(entries).toContain(`- ${e}`);
    expect(entries).toContain(`- ${host.path('data', 'notes.txt').slice(1)}`);
    // The data is in the entries: the plain dump's COPY block and the SQLite dump's rows.
    const plain = await expectCli(stack, ['borg', repo, '--', 'extract', '--stdout', `::${archive}`, `pgsql/${pgDb}.sql`]);
    expect(plain.out).toContain('COPY public.items (id, name) FROM stdin;');
    expect(plain.out).toContain(`${ROWS}\titem ${ROWS}\n`);
    const lite = await expectCli(stack, ['borg', repo, '--', 'extract', '--stdout', `::${archive}`, 'sqlite/app.sql']);
    expect(lite.out).toContain("INSERT INTO notes VALUES(3,'three');");
    // The archive browser shows them like any file.
    const ls = await expectCli(stack, ['ls', archive, 'pgsql']);
    expect(ls.out).toContain(`${pgDb}.sql`);
    expect(ls.out).toContain(`${pgDb}.dump`);
  });

  it('restores each kind of dump into a fresh database, and the rows are there', async () => {
    const pg = ['--db-host', '127.0.0.1', '--db-user', 'postgres'];
    const plain = await restoreDump(['--dump', `pgsql/${pgDb}.sql`, '--into-database', `${pgDb}_plain`, ...pg], 'succeeded');
    expect(plain.out.split('\n')[1]).toBe(`restoring into postgresql:127.0.0.1:default:${pgDb}_plain`);
    expect(await psql(`${pgDb}_plain`, 'select count(*), max(name) from items')).toBe(`${ROWS}|item 99`);
    await restoreDump(['--dump', `pgsql/${pgDb}.dump`, '--into-database', `${pgDb}_custom`, ...pg], 'succeeded');
    expect(await psql(`${pgDb}_custom`, 'select count(*), sum(id) from items')).toBe(`${ROWS}|${(ROWS * (ROWS + 1)) / 2}`);
    await restoreDump(['--dump', `mysql/${myDb}.sql`, '--into-database', `${myDb}_r`, '--db-host', '127.0.0.1', '--db-user', 'root'], 'succeeded');
    expect(await mysql('select count(*) from items', `${myDb}_r`)).toBe(String(ROWS));
    const into = host.path('restored.db');
    await restoreDump(['--dump', 'sqlite/app.sql', '--into-database', into], 'succeeded');
    const q = await run('sqlite3', [into, 'select group_concat(body) from notes']);
    expect(q.stdout.toString().trim()).toBe('one,two,three');
  });

  it('never loads into a database that exists, and a load that cannot run fails with its error and leaves nothing', async () => {
    const before = await psql(`${pgDb}_plain`, 'select count(*) from items');
    const exists = await restoreDump(['--dump', `pgsql/${pgDb}.sql`, '--into-database', `${pgDb}_plain`, '--db-host', '127.0.0.1', '--db-user', 'postgres'], 'failed');
    expect(exists.job.error).toMatch(new RegExp(`^creating database ${pgDb}_plain failed: createdb exited with 1: createdb: error: database creation failed: ERROR: database "${pgDb}_plain" already exists$`));
    expect(await psql(`${pgDb}_plain`, 'select count(*) from items')).toBe(before);

    const role = await restoreDump(['--dump', `pgsql/${pgDb}.sql`, '--into-database', `${pgDb}_norole`, '--db-host', '127.0.0.1', '--db-user', 'no_such_role'], 'failed');
    expect(role.job.error).toMatch(/^creating database \S+ failed: createdb exited with 1: .*role "no_such_role" does not exist$/);
    expect(await pgDatabases()).not.toContain(`${pgDb}_norole`);

    const lite = host.path('restored.db');
    const again = await restoreDump(['--dump', 'sqlite/app.sql', '--into-database', lite], 'failed');
    expect(again.job.error).toBe(`the SQLite file ${lite} already exists on the client: a dump is restored only into a new one`);

    // Bad input: refused before any job starts.
    const notDump = await expectCli(stack, ['restore', archive, '--client', 'db', '--dump', host.path('data', 'notes.txt').slice(1), '--into-database', 'x'], 2);
    expect(notDump.err).toMatch(/is not a dump entry/);
  });

  it('a cancelled dump restore drops the database it had created, and leaves nothing on the client', async () => {
    // borg extract waits at the gate, after run.sh has created the database.
    const gate = gatedBorg(host, 'extract');
    await expectCli(stack, ['client', 'edit', 'db', '--borg-path', gate.path]);
    gate.hold();
    try {
      const into = `${pgDb}_cancel`;
      const r = await expectCli(stack, ['restore', archive, '--client', 'db', '--dump', `pgsql/${pgDb}.sql`, '--into-database', into, '--db-host', '127.0.0.1', '--db-user', 'postgres']);
      const id = r.out.split('\n')[0]!;
      await waitUntil(async () => (await pgDatabases()).includes(into), 60_000);
      await expectCli(stack, ['job', 'cancel', id]);
      const job = await waitForJob(stack, id);
      expect(job.state, await describeJob(stack, id)).toBe('cancelled');
      expect(await pgDatabases()).not.toContain(into);
      expectNothingLeft(id);
      const log = (await jobLogTail(stack.deps, id, 20)).map((l) => `${l.level} ${l.message}`);
      expect(log).toContain(`INFO dropped database "${into}" on the client: the restore that created it did not finish`);
    } finally {
      gate.release();
      await expectCli(stack, ['client', 'edit', 'db', '--borg-path', 'borg']);
    }
  });

  it('a dump that fails fails the backup with the tool\'s error, and leaves no archive and nothing on the client', async () => {
    const archivesBefore = await archiveNames();
    await expectCli(stack, ['client', 'dumps', 'db', '--clear']);
    await expectCli(stack, ['client', 'dumps', 'db', '--add-postgresql', `${pgDb}_missing`, '--db-host', '127.0.0.1', '--db-user', 'postgres']);
    const missing = await backup(stack, 'db', repo, 'failed');
    expect(missing.error).toMatch(new RegExp(`^the dump pgsql/${pgDb}_missing.sql failed: pg_dump exited with 1: pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL: database "${pgDb}_missing" does not exist$`));
    expectNothingLeft(missing.id);

    // The client has no sudo: the tool that is missing is named.
    await expectCli(stack, ['client', 'dumps', 'db', '--clear']);
    await expectCli(stack, ['client', 'dumps', 'db', '--add-sqlite', sqliteFile]);
    await expectCli(stack, ['client', 'dumps', 'db', '--add-postgresql', pgDb, '--sudo-user', 'postgres']);
    const nosudo = await backup(stack, 'db', repo, 'failed');
    const hasSudo = (await run('sh', ['-c', 'command -v sudo'])).code === 0;
    if (hasSudo) expect(nosudo.error).toMatch(/^the dump pgsql\/\S+ failed: sudo exited with 1: sudo: .*password/);
    else expect(nosudo.error).toBe(`the dump pgsql/${pgDb}.sql failed: sudo is not installed on the client (or not on the login account's PATH)`);
    expectNothingLeft(nosudo.id);

    // Neither failed job committed anything: no archive, no checkpoint.
    expect(await archiveNames()).toEqual(archivesBefore);
    await expectCli(stack, ['borg', repo, '--', 'check']);
    await expectCli(stack, ['client', 'dumps', 'db', '--clear']);
  });

  afterAll(() => rmSync(host.path('restored.db'), { force: true }));
});
