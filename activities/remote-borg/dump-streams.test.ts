// run.sh's dump parts with a stand-in for borg (`cat` of the FIFOs, as borg --read-special reads
// them) and the real sqlite3 as the dump tool: what reaches the reader, and that a failing dump
// stops the reader before it could see the end of its FIFO.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { DumpRestore, DumpSpec } from '../../db/schema.js';
import { backupDumpOutcome, backupDumpParts, dumpArgv, loadCommands, restoreDumpOutcome, restoreDumpParts } from './dump-streams.js';
import { runScript, stopRunScript, type ScriptParts } from './run-script.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'dump-streams-'));
  dirs.push(d);
  return d;
}

/** Runs run.sh with `command` as borg (in `cwd`) and the given parts; returns the job folder. */
function run(command: string[], parts: ScriptParts, cwd?: string): string {
  const dir = scratch();
  if (cwd) mkdirSync(join(dir, cwd));
  writeFileSync(join(dir, 'run.sh'), runScript({ jobId: 'j', dir, argv: command, cwd: cwd && join(dir, cwd), parts }));
  execFileSync('sh', [join(dir, 'run.sh')], { timeout: 30_000 });
  return dir;
}

const reader = (dir: string) => (name: string, max: number) => Promise.resolve(existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8').slice(0, max) : undefined);

function sqliteDb(rows: number): string {
  const file = join(scratch(), 'app.db');
  execFileSync('sqlite3', [file, `create table t(a); ${Array.from({ length: rows }, (_, i) => `insert into t values (${i});`).join('')}`]);
  return file;
}

describe('dump argv', () => {
  it('never asks for a password and keeps names from reading as options', () => {
    expect(dumpArgv({ kind: 'postgresql', database: 'app', format: 'custom', host: '127.0.0.1', user: 'postgres' })).toEqual(['pg_dump', '-w', '-h', '127.0.0.1', '-U', 'postgres', '--format=custom', '--', 'app']);
    expect(dumpArgv({ kind: 'postgresql', all: true, format: 'plain', sudoUser: 'postgres' })).toEqual(['sudo', '-n', '-u', 'postgres', '--', 'pg_dumpall', '-w']);
    expect(dumpArgv({ kind: 'mysql', database: 'shop', defaultsFile: '/etc/my.cnf', port: 3307 })).toEqual(['mysqldump', '--defaults-file=/etc/my.cnf', '-P', '3307', '--single-transaction', 'shop']);
    expect(loadCommands({ entry: 'pgsql/app.dump', kind: 'postgresql', format: 'custom', into: 'new' }).load).toEqual(['pg_restore', '-w', '--single-transaction', '--exit-on-error', '-d', 'new']);
  });
});

describe('backup dump parts', () => {
  it('streams each dump through its FIFO to the reader, which sees each one end', async () => {
    const b = join(scratch(), 'other.sqlite3');
    execFileSync('sqlite3', [b, 'create table u(b); insert into u values (42);']);
    const two: DumpSpec[] = [{ kind: 'sqlite', path: sqliteDb(3) }, { kind: 'sqlite', path: b }];
    const dir = run(['sh', '-c', 'exec cat sqlite/app.sql sqlite/other.sql'], backupDumpParts(two), 'dumps');
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('0\n');
    const out = readFileSync(join(dir, 'borg.out'), 'utf8');
    expect(out).toContain('INSERT INTO t VALUES(2);');
    expect(out).toContain('INSERT INTO u VALUES(42);');
    expect(out.trimEnd().endsWith('COMMIT;')).toBe(true);
    expect(await backupDumpOutcome(two, reader(dir), 0)).toEqual({ lines: [] });
  });

  it('a retried run in the same job folder starts over: the FIFOs of the first run are gone first', async () => {
    const dumps: DumpSpec[] = [{ kind: 'sqlite', path: sqliteDb(2) }];
    const dir = run(['sh', '-c', 'exec cat sqlite/app.sql'], backupDumpParts(dumps), 'dumps');
    execFileSync('sh', [join(dir, 'run.sh')], { timeout: 30_000 });
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('0\n');
    expect(existsSync(join(dir, 'dump-setup.failed'))).toBe(false);
    expect(await backupDumpOutcome(dumps, reader(dir), 0)).toEqual({ lines: [] });
  });

  it('a failing dump stops the reader before the FIFO ends, and says why in one line', async () => {
    const dumps: DumpSpec[] = [{ kind: 'sqlite', path: '/nonexistent/app.db' }];
    const dir = run(['sh', '-c', 'exec cat sqlite/app.sql'], backupDumpParts(dumps), 'dumps');
    // cat was killed (SIGTERM: 143), never saw the end of its input
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('143\n');
    const o = await backupDumpOutcome(dumps, reader(dir), 143);
    expect(o.failure).toMatch(/^the dump sqlite\/app\.sql failed: sqlite3 exited with 1: Error: unable to open database "\/nonexistent\/app\.db"/);
    expect(o.failure).not.toContain('\n');
    expect(o.lines[0]?.level).toBe('ERROR');
  });

  it('a tool that is not installed is named as such', async () => {
    const dumps: DumpSpec[] = [{ kind: 'sqlite', path: '/x.db' }];
    const parts = backupDumpParts(dumps);
    parts.started = parts.started!.map((l) => l.replace('sqlite3 -readonly', 'no-such-sqlite-tool -readonly'));
    const dir = run(['sh', '-c', 'exec cat sqlite/x.sql'], parts, 'dumps');
    const o = await backupDumpOutcome(dumps, reader(dir), 143);
    expect(readFileSync(join(dir, 'dump-1.rc'), 'utf8')).toBe('127\n');
    expect(o.failure).toBe("the dump sqlite/x.sql failed: no-such-sqlite-tool is not installed on the client (or not on the login account's PATH)");
  });

  it('a FIFO the reader never opened is reported, and its writer does not outlive run.sh', async () => {
    const dumps: DumpSpec[] = [{ kind: 'sqlite', path: sqliteDb(1) }];
    const dir = run(['true'], backupDumpParts(dumps), 'dumps');
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('0\n');
    expect((await backupDumpOutcome(dumps, reader(dir), 0)).failure).toBe('the dump sqlite/app.sql was not read by borg: the archive does not hold it');
  });
});

describe('restore dump parts', () => {
  it('loads what the reader streams into a new SQLite file', async () => {
    const src = sqliteDb(5);
    const dump = execFileSync('sqlite3', [src, '.dump']);
    const into = join(scratch(), 'restored.db');
    const r: DumpRestore = { entry: 'sqlite/app.sql', kind: 'sqlite', into };
    const dumpFile = join(scratch(), 'dump.sql');
    writeFileSync(dumpFile, dump);
    const dir = run(['cat', dumpFile], restoreDumpParts(r));
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('0\n');
    expect(await restoreDumpOutcome(r, reader(dir))).toEqual({ lines: [] });
    expect(execFileSync('sqlite3', [into, 'select count(*) from t'], { encoding: 'utf8' }).trim()).toBe('5');
  });

  it('a failing extract stops the loader and leaves no file; an existing file is refused', async () => {
    const into = join(scratch(), 'restored.db');
    const r: DumpRestore = { entry: 'sqlite/app.sql', kind: 'sqlite', into };
    // half a dump, then borg fails: the loader must not commit what it got
    const dir = run(['sh', '-c', 'printf "BEGIN TRANSACTION;\\nCREATE TABLE t(a);\\nINSERT INTO t VALUES(1);\\n"; sleep 0.5; exit 2'], restoreDumpParts(r));
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('2\n');
    expect(existsSync(into)).toBe(false);
    expect((await restoreDumpOutcome(r, reader(dir))).failure).toBeUndefined();

    writeFileSync(into, '');
    const again = run(['sh', '-c', 'exit 0'], restoreDumpParts(r));
    expect((await restoreDumpOutcome(r, reader(again))).failure).toBe(`the SQLite file ${into} already exists on the client: a dump is restored only into a new one`);
    expect(readFileSync(into, 'utf8')).toBe('');
  });

  it('a load command that fails says so with its error and removes what it made', async () => {
    const into = join(scratch(), 'restored.db');
    const r: DumpRestore = { entry: 'sqlite/app.sql', kind: 'sqlite', into };
    const dir = run(['printf', 'CREATE TABLE t(a);\\nthis is not sql;\\n'], restoreDumpParts(r));
    const o = await restoreDumpOutcome(r, reader(dir));
    expect(o.failure).toMatch(/^loading sqlite\/app\.sql into the SQLite file .* failed: sqlite3 exited with 1: .*syntax error/);
    expect(existsSync(into)).toBe(false);
  });

  it('a run stopped mid-load (a cancel) leaves undo.sh, which removes what the restore created', async () => {
    const into = join(scratch(), 'restored.db');
    const r: DumpRestore = { entry: 'sqlite/app.sql', kind: 'sqlite', into };
    const dir = scratch();
    writeFileSync(join(dir, 'run.sh'), runScript({ jobId: 'j', dir, argv: ['sh', '-c', 'printf "CREATE TABLE t(a);\\n"; exec sleep 30'], parts: restoreDumpParts(r) }));
    spawn('setsid', ['-f', 'sh', join(dir, 'run.sh')], { stdio: 'ignore' }).unref();
    for (let i = 0; !(existsSync(into) && existsSync(join(dir, 'borg.pid'))); i++) {
      if (i > 200) throw new Error('the load never started');
      await sleep(50);
    }
    // What a cancel runs: run.sh and its loader die before they could drop anything.
    execFileSync('sh', ['-c', stopRunScript(dir)], { timeout: 30_000 });
    expect(existsSync(join(dir, 'rc'))).toBe(false);
    expect(existsSync(into)).toBe(true);
    expect(execFileSync('sh', [join(dir, 'undo.sh')], { encoding: 'utf8' })).toBe(`removed the SQLite file ${JSON.stringify(into)} on the client: the restore that created it did not finish\n`);
    expect(existsSync(into)).toBe(false);
  });

  it('a load that succeeded leaves no undo.sh: the cleanup never removes a restored database', () => {
    const into = join(scratch(), 'restored.db');
    const dir = run(['printf', 'CREATE TABLE t(a);\\n'], restoreDumpParts({ entry: 'sqlite/app.sql', kind: 'sqlite', into }));
    expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('0\n');
    expect(existsSync(join(dir, 'undo.sh'))).toBe(false);
    expect(existsSync(into)).toBe(true);
  });
});
