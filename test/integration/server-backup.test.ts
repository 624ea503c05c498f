// Issue 22 point 3: backing up BorgCube itself. A stack with a client and a repository takes a
// backup, `borgcube server-backup` captures the server, one more backup lands in the repository,
// then the server's disk is "lost": its database dropped and its data dir removed, while the
// repositories folder survives (the assumption: repositories live on a disk of their own). After
// `borgcube server-restore` and the provisioning `npm start` does, the archives are there, a new
// backup runs, the client's pinned host key still holds and the client needed no change (the
// server's SSH key and BorgCube sshd's host key are the old ones). Bad input — a non-empty or
// unwritable folder, a damaged dump, a restore over a live database — gives one line and changes
// nothing.
import { execFileSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findClientByName } from '../../db/queries/clients.js';
import { requireAccount } from '../../infra/accounts.js';
import { ensureDataDir } from '../../infra/local-stack/data-dir.js';
import { waitFor } from '../../infra/local-stack/net.js';
import { addClient } from '../../services/clients.js';
import type { ServerBackupManifest } from '../../services/server-backup.js';
import { archiveNames, backup, borgCheck } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { testDatabaseServerUrl } from '../harness/db.js';
import { dropTestDatabase } from '../harness/leftovers.js';
import { startBorgcubeSshd, startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';
import { tempDir } from '../harness/temp-dir.js';

describe('server backup and restore', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let work: string;
  let first: string;
  const repoPath = () => `${stack.dataDir}-repos/r1`;

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  async function databaseExists(): Promise<boolean> {
    const u = new URL(testDatabaseServerUrl());
    u.pathname = '/postgres';
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    try {
      return Boolean((await c.query('select 1 from pg_database where datname = $1', [stack.db.name])).rowCount);
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n', 'data/big.bin': { type: 'file', size: 1024 * 1024, seed: 's' } } });
    await cli(['repo', 'add', 'r1', '--path', repoPath()]);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    first = (await backup(stack, 'web', 'r1')).archiveName!;
    work = tempDir('borgcube-test-server-backup');
  });
  afterAll(runCleanups);

  it('refuses a non-empty or unwritable folder with one line, writing nothing', async () => {
    const full = join(work, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'mine.txt'), 'keep me\n');
    const r = await cli(['server-backup', full], 2);
    expect(r.err).toBe(`borgcube: ${full} is not empty; give a new or empty folder (a server backup never writes over another)\n`);
    expect(readdirSync(full)).toEqual(['mine.txt']);

    const ro = join(work, 'read-only');
    mkdirSync(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
    registerCleanup(`read-only mount ${ro}`, () => void execFileSync('umount', [ro]));
    const r2 = await cli(['server-backup', ro], 2);
    expect(r2.err).toBe(`borgcube: cannot write into ${ro}: EROFS\n`);
    const r3 = await cli(['server-backup', join(ro, 'new')], 2);
    expect(r3.err).toBe(`borgcube: cannot create ${join(ro, 'new')}: EROFS\n`);
  });

  it('restores onto a wiped server: archives, a new backup, pinned host keys, no change on the client', async () => {
    const dir = join(work, 'backup');
    const r = await cli(['server-backup', dir]);
    expect(r.out).toMatch(/^server backup written to .*: database \S+ \(1 repositories, 1 clients\)/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ServerBackupManifest;
    expect(manifest).toMatchObject({ format: 'borgcube-server-backup', version: 1, storageHost: stack.config.storageHost, repositories: [{ name: 'r1', path: repoPath() }] });
    expect(manifest.borgVersion).toMatch(/^borg 1\.2/);
    expect(manifest.pgDumpVersion).toMatch(/^pg_dump \(PostgreSQL\) \d+/);
    expect(manifest.files.map((f) => f.name).sort()).toEqual(['config.env', 'database.dump', 'master.key', 'ssh/id_ed25519', 'ssh/id_ed25519.pub', 'sshd/ssh_host_ed25519_key', 'sshd/ssh_host_ed25519_key.pub']);
    for (const f of manifest.files) expect(statSync(join(dir, f.name)).mode & 0o777, f.name).toBe(0o600);
    expect(readFileSync(join(dir, 'master.key'))).toEqual(readFileSync(stack.config.paths.masterKey));
    expect(readFileSync(join(dir, 'config.env'), 'utf8')).toContain(`BORGCUBE_STORAGE_HOST=${stack.config.storageHost}`);

    // One more backup after the server backup: in the repository, not in the restored records.
    const later = await backup(stack, 'web', 'r1');
    const archivesBefore = await archiveNames(stack, 'r1');
    const before = {
      serverKey: (await cli(['server-key'])).out.trim(),
      sshdHostKey: stack.sshd.hostPublicKey,
      pinned: (await findClientByName(stack.deps.db, 'web'))!.hostKey,
      authorizedKeys: readFileSync(host.path('.ssh/authorized_keys'), 'utf8'),
    };
    expect(before.pinned).toBe(sshd.hostPublicKey);

    // The server's disk is lost: processes gone, database dropped, data dir removed.
    await stack.worker.stop();
    await stack.storage.stop();
    await stack.sshd.stop();
    await dropTestDatabase(testDatabaseServerUrl(), stack.db.name);
    rmSync(stack.dataDir, { recursive: true, force: true });
    expect(existsSync(join(repoPath(), 'config'))).toBe(true);

    // A damaged dump: one line, nothing restored.
    const damaged = join(work, 'damaged');
    cpSync(dir, damaged, { recursive: true });
    const dump = join(damaged, 'database.dump');
    const fd = openSync(dump, 'r+');
    writeSync(fd, Buffer.from([readFileSync(dump)[200]! ^ 0xff]), 0, 1, 200);
    closeSync(fd);
    const bad = await cli(['server-restore', damaged], 2);
    expect(bad.err).toBe(`borgcube: ${dump} does not match its checksum in manifest.json (damaged or altered); nothing was restored\n`);
    expect(await databaseExists()).toBe(false);
    expect(existsSync(stack.dataDir)).toBe(false);

    const restored = await cli(['server-restore', dir]);
    expect(restored.out).toMatch(/^restored the server backup of \S+: database \S+ \(1 repositories, 1 clients\), master key, SSH keys/);
    const storageAccount = requireAccount(stack.config.accounts.storage);
    const mk = statSync(stack.config.paths.masterKey);
    expect([mk.uid, mk.mode & 0o777]).toEqual([storageAccount.uid, 0o600]);
    expect(statSync(stack.config.ssh.keyPath).mode & 0o777).toBe(0o600);

    // What `npm start` does next: provision the rest of the data dir, start sshd and the services.
    await ensureDataDir(stack.config, { storage: storageAccount, proxy: requireAccount(stack.config.accounts.proxy) });
    const newSshd = await startBorgcubeSshd({ dataDir: stack.dataDir, inDataDir: true, port: stack.sshd.port });
    expect(newSshd.hostPublicKey).toBe(before.sshdHostKey);
    await stack.storage.start();
    await waitFor('the repository service socket', () => existsSync(stack.config.paths.storageSocket), { timeoutMs: 30_000 });
    await stack.worker.start();

    expect((await cli(['server-key'])).out.trim()).toBe(before.serverKey);
    expect((await findClientByName(stack.deps.db, 'web'))!.hostKey).toBe(before.pinned);
    const recorded = (await cli(['archives', 'web'])).out;
    expect(recorded).toContain(first);
    expect(recorded).not.toContain(later.archiveName!);
    expect(await archiveNames(stack, 'r1')).toEqual(archivesBefore);

    const next = await backup(stack, 'web', 'r1');
    expect(await archiveNames(stack, 'r1')).toEqual([...archivesBefore, next.archiveName!]);
    await borgCheck(stack, 'r1');
    expect(readFileSync(host.path('.ssh/authorized_keys'), 'utf8')).toBe(before.authorizedKeys);

    // A second restore over the live server is refused: its database is not empty.
    const again = await cli(['server-restore', dir], 1);
    expect(again.err).toMatch(/^borgcube: the database \S+ is not empty; stop BorgCube and pass --replace/);
    expect(again.err.split('\n').filter(Boolean)).toHaveLength(1);
  });
});
