// Issue 3 acceptance: stock borg create through the proxy, every key mode × every compression,
// read back on the server with the real key (list, bit-identical extract, check --verify-data),
// and a second backup of the same tree sends at most 2% of the first one's bytes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addClient, updateClient } from '../../services/clients.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost, type TreeSpec } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { archiveNames, backup, borgCheck, expectSameTree, extract } from '../harness/backup.js';

const modes = ['repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2'] as const;
const compressions = ['none', 'lz4', 'zstd', 'zlib', 'lzma'] as const;

const tree: TreeSpec = {
  'data/random.bin': { type: 'file', size: 3 * 1024 * 1024 + 17, seed: 'r' },
  'data/text.txt': 'hello borgcube\n'.repeat(20_000),
  'data/empty': '',
  'data/dir/nested.txt': { type: 'file', content: 'nested', mode: 0o600, mtime: new Date('2020-02-02T02:02:02Z') },
  'data/dir/exec.sh': { type: 'file', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'data/link': { type: 'symlink', target: 'dir/nested.txt' },
  'data/ünïcode name with spaces': 'x',
  'data/dir': { type: 'dir', mode: 0o750, mtime: new Date('2021-01-01T00:00:00Z') },
};

describe('backups through the proxy', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree });
  });
  afterAll(runCleanups);

  // The four key modes run side by side (each its own client and repository): a backup of this
  // small tree mostly waits on SSH and the job's steps, so this costs a quarter of running them in turn.
  for (const mode of modes) {
    it.concurrent(`${mode}: every compression round-trips, and borg check --verify-data passes`, async ({ expect }) => {
      const repo = `r-${mode}`;
      const r = await stack.cli(['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`, '--encryption', mode]);
      expect(r.code, r.err).toBe(0);
      const client = `c-${mode}`;
      await addClient(stack.deps, { name: client, host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
      for (const compression of compressions) {
        await updateClient(stack.deps, client, { compression });
        const job = await backup(stack, client, repo);
        expect(job.archiveName).toBeTruthy();
        expect(await archiveNames(stack, repo)).toContain(job.archiveName);
        const out = await extract(stack, repo, job.archiveName!);
        expectSameTree(host.path('data'), `${out}${host.path('data')}`);
      }
      await borgCheck(stack, repo, '--verify-data');
    });
  }

  it('a second backup of the same tree sends at most 2% of the first one’s bytes', async () => {
    const r = await stack.cli(['repo', 'add', 'dedup', '--path', `${stack.dataDir}-repos/dedup`]);
    expect(r.code, r.err).toBe(0);
    await addClient(stack.deps, { name: 'dedup', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    const first = await backup(stack, 'dedup', 'dedup');
    const second = await backup(stack, 'dedup', 'dedup');
    const a = Number(first.stats?.uploadedBytes);
    const b = Number(second.stats?.uploadedBytes);
    expect(a).toBeGreaterThan(3 * 1024 * 1024);
    expect(b / a).toBeLessThanOrEqual(0.02);
    await borgCheck(stack, 'dedup');
  });
});
