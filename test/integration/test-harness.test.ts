// The test harness itself (test/harness): databases, the client-host sshd and users, BorgCube's
// sshd, and the Temporal server of the run. Other suites rely on all of it.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lookupAccount } from '../../infra/accounts.js';
import { ensureNamespaceAndSearchAttributes, temporalAnswers } from '../../infra/local-stack/temporal-server.js';
import { sshBanner } from '../../infra/local-stack/net.js';
import { SshConnection, SshError } from '../../infra/ssh.js';
import { searchAttributes } from '../../infra/temporal-search-attributes.js';
import { createClientHost, describeTree, pseudoRandomBytes } from '../harness/client-host.js';
import { createTestDatabase } from '../harness/db.js';
import { generateTestKey } from '../harness/keys.js';
import { startBorgcubeSshd, startClientSshd } from '../harness/sshd.js';
import { createTestWorkflowEnvironment, testTemporal } from '../harness/temporal.js';

describe('createTestDatabase', () => {
  it('gives an empty, migrated database and drops it', async () => {
    const tdb = await createTestDatabase();
    const journal = JSON.parse(readFileSync(new URL('../../db/migrations/meta/_journal.json', import.meta.url), 'utf8')) as { entries: unknown[] };
    const applied = await tdb.handle.pool.query<{ n: string }>('select count(*) as n from drizzle.__drizzle_migrations');
    expect(Number(applied.rows[0]!.n)).toBe(journal.entries.length);
    const users = await tdb.handle.pool.query<{ n: string }>('select count(*) as n from users');
    expect(Number(users.rows[0]!.n)).toBe(0);

    await tdb.drop();
    await tdb.drop(); // idempotent
    const other = await createTestDatabase({ migrate: false });
    const exists = await other.handle.pool.query('select 1 from pg_database where datname = $1', [tdb.name]);
    expect(exists.rowCount).toBe(0);
    const tables = await other.handle.pool.query("select 1 from information_schema.tables where table_schema = 'public'");
    expect(tables.rowCount).toBe(0);
  });
});

describe('client hosts behind the client sshd', () => {
  it('logs in with an authorized key, runs a command, and pins the host key', async () => {
    const key = generateTestKey();
    const sshd = await startClientSshd();
    const host = await createClientHost({ authorizedKeys: [key.publicKey] });
    const target = { host: sshd.host, port: sshd.port, username: host.username };

    const conn = await SshConnection.connect(target, { privateKey: key.privateKey, pinnedHostKey: sshd.hostPublicKey });
    try {
      expect(conn.hostKey.key).toBe(sshd.hostPublicKey);
      const r = await conn.exec(['id', '-un']);
      expect(r.code).toBe(0);
      expect(r.stdout.toString().trim()).toBe(host.username);

      // One SFTP channel is shared; once it has closed, the next call opens a new one instead of
      // handing out the dead one (a pooled connection would fail its next activity).
      const sftp = await conn.sftp();
      expect(await conn.sftp()).toBe(sftp);
      const closed = new Promise((r) => sftp.once('close', r));
      sftp.end();
      await closed;
      const again = await conn.sftp();
      expect(again).not.toBe(sftp);
      const home = await new Promise<string>((resolve, reject) => again.realpath('.', (err, p) => (err ? reject(err) : resolve(p))));
      expect(home).toBe(host.path());
    } finally {
      conn.close();
    }

    // A key that is not authorized is refused.
    await expect(SshConnection.connect(target, { privateKey: generateTestKey().privateKey, pinnedHostKey: sshd.hostPublicKey })).rejects.toMatchObject({ code: 'auth-failed' });

    const oldKey = sshd.hostPublicKey;
    const newKey = await sshd.regenerateHostKey();
    expect(newKey).not.toBe(oldKey);
    expect(sshd.hostPublicKey).toBe(newKey);
    const changed = await SshConnection.connect(target, { privateKey: key.privateKey, pinnedHostKey: oldKey }).catch((e: unknown) => e);
    expect(changed).toBeInstanceOf(SshError);
    expect((changed as SshError).code).toBe('host-key-changed');
    const again = await SshConnection.connect(target, { privateKey: key.privateKey, pinnedHostKey: newKey });
    again.close();
    await sshd.stop();
    await sshd.stop(); // idempotent
  });

  it('writes test trees with contents, sizes, modes, symlinks and mtimes', async () => {
    const host = await createClientHost();
    const mtime = new Date('2024-02-03T04:05:06Z');
    host.writeTree(
      {
        'a.txt': 'hello\n',
        'bin/run.sh': { type: 'file', content: '#!/bin/sh\n', mode: 0o755, mtime },
        'big/one': { type: 'file', size: 5 * 1024 * 1024 + 3, seed: 'same' },
        'big/two': { type: 'file', size: 1000, seed: 'same' },
        'empty/': { type: 'dir', mode: 0o700, mtime },
        'link': { type: 'symlink', target: 'a.txt' },
      },
      'data',
    );
    const tree = describeTree(host.path('data'));
    expect(Object.keys(tree).sort()).toEqual(['a.txt', 'big', 'big/one', 'big/two', 'bin', 'bin/run.sh', 'empty', 'link']);
    expect(tree['bin/run.sh']).toMatchObject({ type: 'file', mode: 0o755, mtime: mtime.getTime() / 1000, uid: host.uid });
    expect(tree['empty']).toMatchObject({ type: 'dir', mode: 0o700, mtime: mtime.getTime() / 1000 });
    expect(tree['link']).toMatchObject({ type: 'symlink', target: 'a.txt' });
    expect(tree['big/one']!.size).toBe(5 * 1024 * 1024 + 3);
    // Same seed, same bytes: the shorter file is a prefix of the longer one (dedup fixtures).
    const one = readFileSync(host.path('data/big/one'));
    expect(one.subarray(0, 1000).equals(readFileSync(host.path('data/big/two')))).toBe(true);
    expect(one.equals(pseudoRandomBytes(one.length, 'same'))).toBe(true);
    expect(statSync(host.path('data')).uid).toBe(host.uid);
    expect(statSync(host.home).mode & 0o777).toBe(0o700);

    await host.remove();
    expect(lookupAccount(host.username)).toBeUndefined();
    expect(existsSync(host.home)).toBe(false);
    await host.remove(); // idempotent
  });
});

describe("BorgCube's sshd", () => {
  it('runs the infra/sshd.ts config on a free port', async () => {
    // A script that does not exist authorizes nothing, at once: this tests the sshd, not the proxy.
    const sshd = await startBorgcubeSshd({ storageSocket: '/run/borgcube-test-nonexistent.sock', authorizedKeysScript: '/nonexistent/authorized-keys.js' });
    expect(sshd.hostPublicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    expect(await sshBanner(sshd.host, sshd.port)).toMatch(/^SSH-2\.0-OpenSSH/);
    const refused = await SshConnection.connect({ host: sshd.host, port: sshd.port, username: 'borgcube' }, { privateKey: generateTestKey().privateKey, pinnedHostKey: sshd.hostPublicKey }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'auth-failed' });
    await sshd.stop();
    expect(existsSync(sshd.dir)).toBe(false);
  });
});

describe('Temporal of the test run', () => {
  it('answers with the namespace and the search attributes', async () => {
    const t = testTemporal();
    expect(await temporalAnswers(t.address, t.namespace)).toBe(true);
    // Registered at start: nothing is missing.
    expect(await ensureNamespaceAndSearchAttributes(t.address, t.namespace)).toEqual([]);
    const env = await createTestWorkflowEnvironment();
    const info = await env.client.connection.operatorService.listSearchAttributes({ namespace: t.namespace });
    for (const k of Object.values(searchAttributes)) expect(Object.keys(info.customAttributes ?? {})).toContain(k.name);
  });
});
