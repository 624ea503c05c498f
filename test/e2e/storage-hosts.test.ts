// Issue 23 point 2, end to end: two storage hosts on this machine (the stack's, and a second one
// with its own data dir, storage and proxy accounts, sshd port, repository service and storage
// worker). Repositories on each; backups and restores go to the right host (its files appear only
// in its data dir, its sshd serves the client's borg); the central worker reads no storage
// files; one host stopped → its job fails at once with "storage host X is not responding (last
// seen …)" while the other host's backup succeeds.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findClientByName } from '../../db/queries/clients.js';
import { findRepositoryByName } from '../../db/queries/repositories.js';
import { addClient } from '../../services/clients.js';
import { startBackup } from '../../services/jobs.js';
import { startRestore } from '../../services/restores.js';
import { STORAGE_HOST_SILENT_AFTER_S, type StorageHostView } from '../../services/storage-hosts.js';
import { backup, describeJob, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, describeTree, type ClientHost } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';
import { launchStorageHost, type StorageHost } from '../harness/storage-host.js';

const admin = { actor: 'test:admin', userId: null, role: 'admin' as const };

describe('several storage hosts', () => {
  let stack: TestStack;
  let hostB: StorageHost;
  let sshd: ClientSshd;
  let client: ClientHost;

  const hostA = () => stack.config.storageHost;
  const filesCache = (dataDir: string, clientId: string, repoId: string) => join(dataDir, 'storage', 'files-caches', clientId, `${repoId}.files`);
  const storageHosts = async () => JSON.parse((await expectCli(stack, ['storage-host', 'list', '--json'])).out) as StorageHostView[];

  beforeAll(async () => {
    stack = await startStack();
    hostB = await launchStorageHost(stack, `${stack.config.storageHost}-b`);
    sshd = await startClientSshd();
    client = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: { 'data/a.txt': 'alpha\n', 'data/dir/b.bin': { type: 'file', size: 3 * 1024 * 1024, seed: 'hosts-b' } },
    });
    await addClient(stack.deps, { name: 'web1', host: sshd.host, port: sshd.port, user: client.username, paths: [client.path('data')] });
    // One repository on each host, each created on its own host.
    await expectCli(stack, ['repo', 'add', 'on-a', '--path', `${stack.dataDir}-repos/on-a`]);
    const onB = await hostB.cli(['repo', 'add', 'on-b', '--path', join(hostB.reposDir, 'on-b')]);
    expect(onB.code, onB.err).toBe(0);
    expect(onB.out).toContain(`on storage host ${hostB.name}`);
  });
  afterAll(runCleanups);

  it('lists both hosts as up, with the sshd each one tells clients to use', async () => {
    const hosts = await storageHosts();
    const byName = new Map(hosts.map((h) => [h.name, h]));
    expect(byName.get(hostA())).toMatchObject({ status: 'up', sshHost: '127.0.0.1', sshPort: stack.sshd.port, repositories: 1 });
    expect(byName.get(hostB.name)).toMatchObject({ status: 'up', sshHost: '127.0.0.1', sshPort: hostB.sshd.port, repositories: 1 });
    const text = (await expectCli(stack, ['storage-host', 'list'])).out;
    expect(text).toMatch(new RegExp(`^${hostB.name}\\s+up\\s+127\\.0\\.0\\.1:${hostB.sshd.port}\\s+1\\s`, 'm'));
  });

  it('refuses a repository on an unknown host, and one of another host from here', async () => {
    const unknown = await expectCli(stack, ['repo', 'add', 'nowhere', '--path', `${stack.dataDir}-repos/nowhere`, '--storage-host', 'no-such-host'], 2);
    expect(unknown.err).toMatch(/storage host "no-such-host" is unknown \(known: .*\)/);
    const remote = await expectCli(stack, ['repo', 'add', 'elsewhere', '--path', `${stack.dataDir}-repos/elsewhere`, '--storage-host', hostB.name], 2);
    expect(remote.err).toContain(`are created on ${hostB.name} itself`);
    expect(existsSync(`${stack.dataDir}-repos/elsewhere`)).toBe(false);
    expect(await findRepositoryByName(stack.deps.db, 'elsewhere')).toBeUndefined();
  });

  it('backs up into each host through its own sshd; each host keeps its own files', async () => {
    const webClient = (await findClientByName(stack.deps.db, 'web1'))!;
    const repoA = (await findRepositoryByName(stack.deps.db, 'on-a'))!;
    const repoB = (await findRepositoryByName(stack.deps.db, 'on-b'))!;
    expect(repoB.storageHost).toBe(hostB.name);
    const proxyLoginsB = () => (hostB.sshd.log.match(new RegExp(`Accepted publickey for ${hostB.config.accounts.proxy}`, 'g')) ?? []).length;
    const proxyLoginsA = () => (stack.sshd.log.match(/Accepted publickey for /g) ?? []).length;

    const beforeA = proxyLoginsA();
    const jobB = await backup(stack, 'web1', 'on-b');
    expect(jobB.stats?.nfiles).toBe(2);
    expect(proxyLoginsB()).toBeGreaterThan(0);
    expect(proxyLoginsA()).toBe(beforeA);
    // The repository's segments, the job's files cache: on host B only.
    expect(readdirSync(join(hostB.reposDir, 'on-b', 'data')).length).toBeGreaterThan(0);
    expect(existsSync(filesCache(hostB.dataDir, webClient.id, repoB.id)), 'files cache kept on host B').toBe(true);
    expect(existsSync(filesCache(stack.dataDir, webClient.id, repoB.id))).toBe(false);
    const listB = await hostB.cli(['borg', 'on-b', '--', 'list', '--short']);
    expect(listB.code, listB.err).toBe(0);
    expect(listB.out.trim()).toBe(jobB.archiveName);

    const loginsB = proxyLoginsB();
    const jobA = await backup(stack, 'web1', 'on-a');
    expect(jobA.stats?.nfiles).toBe(2);
    expect(proxyLoginsB()).toBe(loginsB);
    expect(proxyLoginsA()).toBeGreaterThan(beforeA);
    expect(existsSync(filesCache(stack.dataDir, webClient.id, repoA.id)), 'files cache kept on host A').toBe(true);
    expect(existsSync(filesCache(hostB.dataDir, webClient.id, repoA.id))).toBe(false);

    // A second backup into B gets B's files cache back: nothing is read again.
    const again = await backup(stack, 'web1', 'on-b');
    expect(again.stats?.nfiles).toBe(2);
    expect(again.stats?.deduplicatedSize ?? Infinity).toBeLessThan(64 * 1024);
  });

  it('restores from the second host into the client', async () => {
    const listB = await hostB.cli(['borg', 'on-b', '--', 'list', '--short']);
    const archive = listB.out.trim().split('\n')[0]!;
    const target = client.path('restored');
    const started = await startRestore(stack.deps, admin, { archive, repository: 'on-b', target });
    const job = await waitForJob(stack, started.id);
    if (job.state !== 'succeeded') throw new Error(`restore ended ${job.state} (${job.error})\n${await describeJob(stack, job.id)}`);
    expect(describeTree(join(target, client.path('data').slice(1)))).toEqual(describeTree(client.path('data')));
  });

  it('with one host stopped, its jobs fail at once and say so; the other host backs up', async () => {
    await hostB.storage.stop();
    // Until it has been silent long enough, the host counts as up.
    const deadline = Date.now() + (STORAGE_HOST_SILENT_AFTER_S + 60) * 1000;
    for (;;) {
      const b = (await storageHosts()).find((h) => h.name === hostB.name);
      if (b?.status === 'down') break;
      if (Date.now() > deadline) throw new Error(`host ${hostB.name} still listed as up: ${JSON.stringify(b)}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    const t0 = Date.now();
    // One client has one backup at a time: B's first (it ends at once), then A's while B is down.
    const onB = await startBackup(stack.deps, { client: 'web1', repository: 'on-b', triggeredBy: 'test' });
    const failed = await waitForJob(stack, onB.id, 60_000);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(new RegExp(`^storage host ${hostB.name} is not responding \\(last seen \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z, \\d+ s ago\\)`));
    expect(Date.now() - t0).toBeLessThan(60_000);
    const onA = await startBackup(stack.deps, { client: 'web1', repository: 'on-a', triggeredBy: 'test' });
    const ok = await waitForJob(stack, onA.id);
    if (ok.state !== 'succeeded') throw new Error(`backup on ${hostA()} ended ${ok.state} (${ok.error})\n${await describeJob(stack, ok.id)}`);
    // The failed job left nothing on the client.
    expect(existsSync(client.path('.borgcube', 'jobs', onB.id))).toBe(false);
    const shown = (await expectCli(stack, ['storage-host', 'list'])).out;
    expect(shown).toMatch(new RegExp(`^${hostB.name}\\s+down\\s`, 'm'));
    expect(readFileSync(hostB.storage.logPath, 'utf8')).toMatch(/stopped/);
  });
});
