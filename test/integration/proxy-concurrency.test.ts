// Issue 3 acceptance: three clients back up into one repository at the same time; all archives
// are there, borg check --verify-data passes, and no AES-CTR counter was used twice under the
// real key in any object stored in the repository's segment files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asKeyType, loadKey } from '../../proxy/borg/keys.js';
import { decryptObject } from '../../proxy/borg/objects.js';
import { iterRepository } from '../../proxy/borg/test-fixtures.js';
import { addClient } from '../../services/clients.js';
import { getRepository, openRepositorySecrets } from '../../services/repositories.js';
import { startBackup } from '../../services/jobs.js';
import { archiveNames, borgCheck, describeJob, expectSameTree, extract, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

describe('several backups into one repository at once', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  const hosts: ClientHost[] = [];
  const repoPath = () => `${stack.dataDir}-repos/shared`;

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    for (let i = 0; i < 3; i++) {
      hosts.push(
        await createClientHost({
          authorizedKeys: [stack.serverPublicKey],
          tree: {
            // Each client has its own data and some the others have too (cross-client dedup).
            'data/own.bin': { type: 'file', size: 6 * 1024 * 1024, seed: `own-${i}` },
            'data/shared.bin': { type: 'file', size: 4 * 1024 * 1024, seed: 'shared' },
            'data/small.txt': `client ${i}\n`.repeat(1000),
          },
        }),
      );
    }
  });
  afterAll(runCleanups);

  it('all succeed, all archives are there, check --verify-data passes, no nonce is reused', async () => {
    const r = await stack.cli(['repo', 'add', 'shared', '--path', repoPath()]);
    expect(r.code, r.err).toBe(0);
    for (const [i, h] of hosts.entries()) await addClient(stack.deps, { name: `c${i}`, host: sshd.host, port: sshd.port, user: h.username, paths: [h.path('data')] });

    // Two rounds: the second runs against a repository that already has archives.
    for (let round = 0; round < 2; round++) {
      const started = await Promise.all(hosts.map((_, i) => startBackup(stack.deps, { client: `c${i}`, repository: 'shared', triggeredBy: 'test' })));
      const jobs = await Promise.all(started.map((j) => waitForJob(stack, j.id)));
      for (const j of jobs) if (j.state !== 'succeeded') throw new Error(`${j.state}: ${j.error}\n${await describeJob(stack, j.id)}`);
      const names = await archiveNames(stack, 'shared');
      for (const j of jobs) expect(names).toContain(j.archiveName);
      expect(names).toHaveLength(3 * (round + 1));
      for (const [i, j] of jobs.entries()) {
        const out = await extract(stack, 'shared', j.archiveName!);
        expectSameTree(hosts[i]!.path('data'), `${out}${hosts[i]!.path('data')}`);
      }
    }
    await borgCheck(stack, 'shared', '--verify-data');

    // Every stored object: encrypted with the real key, and no counter block used twice.
    const repo = await getRepository(stack.deps, 'shared');
    const secrets = await openRepositorySecrets(stack.deps, repo);
    const key = loadKey(secrets.keyText, secrets.passphrase, asKeyType(0x03));
    const used: Array<[bigint, bigint, string]> = [];
    const seen = new Set<string>();
    let objects = 0;
    for (const e of iterRepository(repoPath())) {
      if (e.tag !== 'put' || !e.data) continue;
      const fingerprint = e.data.toString('base64');
      // A byte-identical rewrite (an undone manifest write puts the previous object back) is the
      // same encryption, not a second use of its counters.
      if (seen.has(fingerprint)) continue;
      seen.add(fingerprint);
      const { iv } = decryptObject(key, e.data); // throws unless the real key's MAC verifies
      const blocks = BigInt(Math.ceil((e.data.length - 41) / 16));
      used.push([iv!, iv! + blocks, `${e.segment}@${e.offset}`]);
      objects++;
    }
    used.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (let i = 1; i < used.length; i++) {
      const [prevStart, prevEnd, where] = used[i - 1]!;
      const [start, , here] = used[i]!;
      expect(start >= prevEnd, `counters of ${where} [${prevStart}, ${prevEnd}) and ${here} (from ${start}) overlap`).toBe(true);
    }
    expect(objects).toBeGreaterThan(10);
  });
});
