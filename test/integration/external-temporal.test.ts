// Issue 23 point 3: BorgCube on an external Temporal — another address, another namespace, mutual
// TLS with a client certificate and a private CA, a server-name override and an API key — as with
// a Temporal cluster behind an ingress or Temporal Cloud. The frontend is a dev server of this
// file started with `--namespace other-ns`, behind a TLS front that demands the client certificate
// and the API key (test/harness/temporal-tls-front.ts: the dev server cannot serve TLS itself).
// Every BorgCube process connects through the configuration alone: the worker, the repository
// service's storage worker, the CLI and the web console; a real backup runs through them.
import { chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireAccount } from '../../infra/accounts.js';
import { loadConfig } from '../../infra/config.js';
import { startTemporal } from '../../infra/local-stack/children.js';
import type { Supervisor } from '../../infra/local-stack/supervisor.js';
import { connectTemporal, temporalConnectionOptions } from '../../infra/temporal.js';
import { addClient } from '../../services/clients.js';
import { getJob } from '../../services/jobs.js';
import { extract, expectSameTree } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { freePort, httpStatus } from '../harness/net.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { launchStack, type Stack } from '../harness/stack-launcher.js';
import { makeTestPki, startTlsFront, type TestPki, type TlsFront } from '../harness/temporal-tls-front.js';
import { startOwnTemporal, type OwnTemporal } from '../harness/temporal-server.js';
import { startWeb } from '../harness/web.js';

const NAMESPACE = 'other-ns';
const API_KEY = 'bc-test-api-key-7f3a9c1e5b';

describe('an external Temporal: another address and namespace, mTLS, an API key', () => {
  let dev: OwnTemporal;
  let pki: TestPki;
  let front: TlsFront;
  let stack: Stack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let tlsEnv: Record<string, string>;

  beforeAll(async () => {
    dev = await startOwnTemporal({ build: false, namespace: NAMESPACE });
    registerCleanup('the external Temporal dev server', () => dev.stop());
    pki = await makeTestPki(requireAccount(loadConfig().accounts.storage).gid);
    front = await startTlsFront({ upstream: dev.address, pki, apiKey: API_KEY });
    const apiKeyFile = join(pki.dir, 'api-key');
    writeFileSync(apiKeyFile, `${API_KEY}\n`, { mode: 0o640 });
    tlsEnv = {
      TEMPORAL_TLS_CERT: pki.clientCert,
      TEMPORAL_TLS_KEY: pki.clientKey,
      TEMPORAL_TLS_CA: pki.caCert,
      TEMPORAL_TLS_SERVER_NAME: pki.serverName,
      TEMPORAL_API_KEY_FILE: apiKeyFile,
    };
    chownSync(apiKeyFile, 0, requireAccount(loadConfig().accounts.storage).gid);
    stack = await launchStack({ temporal: { address: front.address, namespace: NAMESPACE }, env: tlsEnv });
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n', 'data/b.bin': { type: 'file', size: 512 * 1024, seed: 'ext' } } });
    await addClient(stack.deps, { name: 'web1', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
  }, 240_000);
  afterAll(runCleanups);

  it('the configuration yields TLS with the client pair, the CA, the server name and the API key', () => {
    expect(stack.config.temporal).toMatchObject({ address: front.address, namespace: NAMESPACE, external: true, apiKey: { file: tlsEnv.TEMPORAL_API_KEY_FILE } });
    const o = temporalConnectionOptions(stack.config);
    expect(o.tls?.serverNameOverride).toBe(pki.serverName);
    expect(o.tls?.clientCertPair?.crt.toString()).toContain('BEGIN CERTIFICATE');
    expect(o.apiKey).toBe(API_KEY);
  });

  it('a real backup runs on it: the CLI starts it, the worker and the storage worker run it, the web console sees them', async () => {
    const repo = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(repo.code, repo.err).toBe(0);
    const r = await stack.cli(['backup', 'web1', '--repo', 'r1', '--wait', '--json']);
    expect(r.code, `${r.out}${r.err}\n--- worker\n${stack.worker.tail(30)}\n--- storage\n${stack.storage.tail(30)}`).toBe(0);
    const jobId = (JSON.parse(r.out) as { id: string }).id;
    const job = await getJob(stack.deps, jobId);
    expect(job.state).toBe('succeeded');
    expectSameTree(host.path('data'), `${await extract(stack, 'r1', job.archiveName!)}${host.path('data')}`);

    // The workflow lives in other-ns on that server, reached only through TLS and the API key…
    const d = await stack.temporal.workflow.getHandle(jobId).describe();
    expect(d.status.name).toBe('COMPLETED');
    // …not in the server's default namespace.
    const plain = await Connection.connect({ address: dev.address });
    try {
      await expect(new Client({ connection: plain, namespace: 'default' }).workflow.getHandle(jobId).describe()).rejects.toThrow(/not found/i);
    } finally {
      await plain.close();
    }
    // Both workers polled through the front: the storage host's activities ran (prepare, finalize).
    expect(front.stats.forwarded).toBeGreaterThan(10);
    expect([...front.stats.methods]).toEqual(expect.arrayContaining(['/temporal.api.workflowservice.v1.WorkflowService/PollActivityTaskQueue', '/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution']));
    expect(front.stats.refused).toBe(0);

    const web = await startWeb(stack, 'external-temporal-admin-pw-1');
    const health = await fetch(`${web.url}/healthz`);
    expect(await health.json()).toMatchObject({ status: 'ok', temporal: 'ok', workers: 'ok' });
  }, 300_000);

  it('a wrong CA, a missing client certificate or a wrong API key fail with a message that says what was tried', async () => {
    const withEnv = (over: Record<string, string>) => loadConfig({ ...stack.env, ...over });
    const handshakes = front.stats.handshakesRefused;
    // The server's certificate does not chain to the configured CA.
    const wrongCa = await connectTemporal(withEnv({ TEMPORAL_TLS_CA: pki.otherCaCert })).catch((e: Error) => e);
    expect(wrongCa).toBeInstanceOf(Error);
    expect((wrongCa as Error).message).toMatch(new RegExp(`^cannot connect to Temporal at ${front.address} \\(namespace other-ns, TLS with a client certificate, CA ${pki.otherCaCert}, server name ${pki.serverName}, API key\\): .*check that the server speaks TLS`));
    expect((wrongCa as Error).message).not.toContain(API_KEY);
    // No client certificate: the front refuses the handshake.
    const noCert = await connectTemporal(withEnv({ TEMPORAL_TLS_CERT: '', TEMPORAL_TLS_KEY: '' })).catch((e: Error) => e);
    expect((noCert as Error).message).toMatch(/^cannot connect to Temporal at .*TLS, CA/);
    expect(front.stats.handshakesRefused).toBeGreaterThan(handshakes);
    // The right TLS, the wrong key: UNAUTHENTICATED, and the key is not in the message.
    const wrongKey = await connectTemporal(withEnv({ TEMPORAL_API_KEY_FILE: '', TEMPORAL_API_KEY: 'not-the-key-123' })).catch((e: Error) => e);
    expect((wrongKey as Error).message).toMatch(/^cannot connect to Temporal at .*: Failed to connect to Temporal server: .*missing or wrong API key.*\(the server refused the credentials: check TEMPORAL_API_KEY/);
    expect((wrongKey as Error).message).not.toContain('not-the-key-123');
    // A key file that cannot be read: one line naming the variable and the path.
    expect(() => temporalConnectionOptions(withEnv({ TEMPORAL_TLS_KEY: join(pki.dir, 'missing.key') }))).toThrow(`TEMPORAL_TLS_KEY=${join(pki.dir, 'missing.key')}: cannot read it: ENOENT`);
  }, 120_000);

  it('npm start does not start a dev server for an external Temporal that does not answer', async () => {
    const port = await freePort();
    const config = loadConfig({ ...stack.env, TEMPORAL_ADDRESS: `127.0.0.1:${port}` });
    const started: string[] = [];
    const supervisor = { start: (o: { name: string }) => started.push(o.name) } as unknown as Supervisor;
    const c = { config, supervisor, projectDir: '/nonexistent', print: () => {}, signal: new AbortController().signal, databaseUrl: config.databaseUrl };
    await expect(startTemporal(c, '/work/none/temporal')).rejects.toThrow(/Temporal does not answer at 127\.0\.0\.1:\d+ \(namespace other-ns, TLS.*BorgCube does not start a dev server for an external Temporal/);
    expect(started).toEqual([]);
    expect(await httpStatus(`http://127.0.0.1:${port}`)).toBeUndefined();
  });
});
