// Issue 24 point 3: clients run borg 1.4.0 (Debian 13, bookworm-backports) as well as 1.2.4, and
// the server stays on 1.2.4. With a 1.4.0 client, through the real workflow (worker → SSH → client
// → proxy → repository service): key modes × first and incremental backup (dedup kept), each
// archive read back by the server's 1.2.4 (bit-identical extract, check --verify-data) and by 1.4.0
// with the real key (its check verifies every archive's TAM), whole, partial (--strip-components)
// and database-dump restores through the proxy with the 1.4.0 client (identical trees, the rows
// there), a client that switches borg version between jobs, and a hacked client on 1.4.0's own
// modules caught as on 1.2.4. The same cases with 1.2.4 are proxy-backup / proxy-restore / e2e
// restore / e2e dumps / proxy-adversarial-*.
import { chownSync, existsSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../db/schema.js';
import { clientBorg14Dir } from '../../infra/local-stack/client-borg.js';
import { run } from '../../infra/subprocess.js';
import { addClient, updateClient } from '../../services/clients.js';
import { setClientDumps } from '../../services/dumps.js';
import { jobLogTail } from '../../services/jobs.js';
import { startRestore, type StartRestoreInput } from '../../services/restores.js';
import { expectCaught, installEvilBorg, runAttack } from '../fixtures/adversarial.js';
import { archiveNames, backup, borgCheck, describeJob, expectSameTree, extract, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { clientBorg12, clientBorg14 } from '../harness/client-borgs.js';
import { createClientHost, describeTree, type ClientHost, type TreeSpec } from '../harness/client-host.js';
import { describeRichTree, withoutOwners, writeRichTree } from '../harness/rich-tree.js';
import { projectRoot } from '../harness/paths.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

const b14 = await clientBorg14();
if (b14.skip) console.warn(`proxy-borg-versions: ${b14.skip}`);

const admin = { actor: 'test:admin', userId: null, role: 'admin' as const };

const tree: TreeSpec = {
  'data/random.bin': { type: 'file', size: 2 * 1024 * 1024 + 5, seed: 'v14' },
  'data/text.txt': 'hello borg 1.4\n'.repeat(10_000),
  'data/empty': '',
  'data/dir/nested.txt': { type: 'file', content: 'nested', mode: 0o600, mtime: new Date('2020-02-02T02:02:02Z') },
  'data/dir/exec.sh': { type: 'file', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'data/link': { type: 'symlink', target: 'dir/nested.txt' },
  'data/ünïcode name with spaces': 'x',
};

describe('client borg versions through the proxy (server borg 1.2.4)', () => {
  const borg14 = b14.borg ?? { version: '1.4.0', path: '/nonexistent' };
  let stack: TestStack;
  let sshd: ClientSshd;

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
  });
  afterAll(runCleanups);

  async function client(name: string, borgPath: string, rich = false): Promise<{ host: ClientHost; data: string; dataRel: string }> {
    const host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: rich ? undefined : tree });
    if (rich) await writeRichTree(host.path('data'), host);
    await addClient(stack.deps, { name, host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath, compression: 'zstd' });
    return { host, data: host.path('data'), dataRel: host.path('data').replace(/^\/+/, '') };
  }

  async function restore(input: StartRestoreInput, expected: Job['state'] = 'succeeded'): Promise<Job> {
    const started = await startRestore(stack.deps, admin, input);
    const job = await waitForJob(stack, started.id);
    if (job.state !== expected) throw new Error(`restore ended ${job.state} (${job.error}), expected ${expected}\n${await describeJob(stack, job.id)}`);
    return job;
  }

  /** The server side reads the repository with borg 1.4.0 and the real key: check verifies every archive's TAM (borg/archive.py ArchiveChecker). */
  async function check14(repo: string) {
    const r = await stack.cli(['borg', repo, '--', 'check'], { env: { BORGCUBE_BORG_PATH: borg14.path } });
    expect(r.code, `borg 1.4.0 check:\n${r.err}`).toBe(0);
    expect(r.err).not.toMatch(/TAM/);
  }

  // Each mode backs up twice, read back by both versions. Restores by the 1.4.0 client, each kind
  // once (a job costs seconds): repokey (a rich tree) restores the whole archive and a path with
  // --strip-components, keyfile the whole archive and a SQLite dump (FIFOs read with
  // --read-special, then `extract --stdout` into sqlite3); repokey-blake2's MACs are checked by
  // 1.4.0's check, so it restores nothing.
  for (const mode of ['repokey', 'repokey-blake2', 'keyfile'] as const) {
    it.skipIf(!b14.borg)(`borg 1.4.0, ${mode}: first and incremental backup, read back by 1.2.4 and 1.4.0${mode === 'repokey' ? ', restored whole and a path with --strip-components by the 1.4.0 client' : mode === 'keyfile' ? ', restored whole and as a SQLite dump into a new file by the 1.4.0 client' : ''}`, async () => {
      const repo = `v14-${mode}`;
      await expectCli(stack, ['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`, '--encryption', mode]);
      const rich = mode === 'repokey';
      const name = `c14-${mode}`;
      const c = await client(name, borg14.path, rich);
      const withDump = mode === 'keyfile';
      if (withDump) {
        const db = c.host.path('app.db');
        const made = await run('sqlite3', [db, "create table notes(body text); insert into notes values ('one'), ('two');"]);
        expect(made.code, made.stderr.toString()).toBe(0);
        chownSync(db, c.host.uid, c.host.gid);
        await setClientDumps(stack.deps, name, { dumps: [{ kind: 'sqlite', path: db }] });
      }
      const first = await backup(stack, name, repo);
      expect((await stack.cli(['client', 'show', name, '--json'])).out).toContain('1.4.0');
      const second = await backup(stack, name, repo);
      expect(await archiveNames(stack, repo)).toEqual(expect.arrayContaining([first.archiveName, second.archiveName]));
      const a = Number(first.stats?.uploadedBytes);
      const b = Number(second.stats?.uploadedBytes);
      expect(a).toBeGreaterThan(rich ? 1024 * 1024 : 2 * 1024 * 1024);
      expect(b / a, 'the incremental backup deduplicated').toBeLessThanOrEqual(0.02);
      if (!rich) {
        const out = await extract(stack, repo, second.archiveName!);
        expectSameTree(c.data, `${out}${c.data}`);
      }
      await borgCheck(stack, repo, '--verify-data');
      await check14(repo);

      // Rich trees hold root-owned entries the client account restores as its own (as in e2e/restore).
      const picture = async (root: string, part?: string) => {
        const all: Record<string, unknown> = rich ? withoutOwners(await describeRichTree(root)) : describeTree(root);
        return part ? Object.fromEntries(Object.entries(all).filter(([k]) => k === part || k.startsWith(`${part}/`))) : all;
      };
      if (mode === 'repokey-blake2') return;
      await restore({ archive: second.archiveName!, repository: repo, target: c.host.path('restored') });
      expect(await picture(c.host.path('restored', c.dataRel))).toEqual(await picture(c.data));
      registerCleanup(`restores of ${name}`, () => {
        for (const d of ['restored', 'partial', 'restored.db']) rmSync(c.host.path(d), { recursive: true, force: true });
      });

      if (rich) {
        // The path's leading components (home/<user>/data) stripped: deep/… lands in the target.
        await restore({ archive: first.archiveName!, repository: repo, target: c.host.path('partial'), paths: [`${c.dataRel}/deep`], stripComponents: c.dataRel.split('/').length });
        const want = await picture(c.data, 'deep');
        expect(Object.keys(want).length).toBeGreaterThan(1);
        expect(await picture(c.host.path('partial'))).toEqual(want);
      }
      if (withDump) {
        const into = c.host.path('restored.db');
        await restore({ archive: first.archiveName!, repository: repo, dump: { entry: 'sqlite/app.sql', into } });
        const q = await run('sqlite3', [into, 'select group_concat(body) from notes']);
        expect(q.stdout.toString().trim()).toBe('one,two');
      }
    }, 900_000);
  }

  it.skipIf(!b14.borg)('a client that changes borg between jobs (1.2.4 → 1.4.0 → 1.2.4) keeps its cache and dedup, and each version restores the other’s archives', async () => {
    const repo = 'v14-mixed';
    await expectCli(stack, ['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`]);
    const c = await client('mixed', clientBorg12.path);
    const j12 = await backup(stack, 'mixed', repo);
    await updateClient(stack.deps, 'mixed', { borgPath: borg14.path });
    const j14 = await backup(stack, 'mixed', repo);
    await updateClient(stack.deps, 'mixed', { borgPath: clientBorg12.path });
    const j12b = await backup(stack, 'mixed', repo);
    const first = Number(j12.stats?.uploadedBytes);
    for (const j of [j14, j12b]) expect(Number(j.stats?.uploadedBytes) / first).toBeLessThanOrEqual(0.02);
    // 1.2.4 restores what 1.4.0 wrote; then 1.4.0 restores what 1.2.4 wrote.
    await restore({ archive: j14.archiveName!, repository: repo, target: c.host.path('by12') });
    expect(describeTree(join(c.host.path('by12'), c.dataRel))).toEqual(describeTree(c.data));
    await updateClient(stack.deps, 'mixed', { borgPath: borg14.path });
    await restore({ archive: j12.archiveName!, repository: repo, target: c.host.path('by14') });
    expect(describeTree(join(c.host.path('by14'), c.dataRel))).toEqual(describeTree(c.data));
    await borgCheck(stack, repo);
    await check14(repo);
  }, 900_000);

  it.skipIf(!b14.borg)("a hacked client on borg 1.4.0 (evil-borg.py on 1.4.0's own modules) is caught as on 1.2.4: a corrupted MAC, a manifest that drops an archive", async () => {
    const repo = 'v14-evil';
    await expectCli(stack, ['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`]);
    const host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree });
    const modules = join(realpathSync(clientBorg14Dir(projectRoot)), 'usr/lib/python3/dist-packages');
    const party = { client: 'evil14', host, evilPath: installEvilBorg(host, modules) };
    await addClient(stack.deps, { name: party.client, host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: party.evilPath });
    const scene = { stack, repo, earlier: [], timings: [] };
    for (const [attack, kind] of [['put-bad-mac', 'bad-mac'], ['manifest-drop', 'manifest-tamper']] as const) {
      const r = await runAttack(scene, party, attack);
      expect(r.result?.borg, 'the attacker ran on borg 1.4.0').toBe('1.4.0');
      // The repository is checked once, after the last attack.
      await expectCaught(scene, party, r, [kind], { check: attack === 'manifest-drop' });
    }
  }, 900_000);

  it('an unsupported borg (1.1.18, 2.0.0b14) or none: one clear line before anything is pushed, or the server’s borg deployed, as the deploy mode says', async () => {
    const repo = 'v-unsupported';
    await expectCli(stack, ['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`]);
    const host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree });
    // What old and future borgs answer; anything else they are asked fails.
    host.writeTree({
      'bin/borg11': { type: 'file', content: '#!/bin/sh\n[ "$1" = --version ] && echo "borg 1.1.18" && exit 0\nexit 2\n', mode: 0o755 },
      'bin/borg20': { type: 'file', content: '#!/bin/sh\n[ "$1" = --version ] && echo "borg 2.0.0b14" && exit 0\nexit 2\n', mode: 0o755 },
    });
    await addClient(stack.deps, { name: 'old', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: host.path('bin/borg11') });
    const refused = async (expected: RegExp) => {
      const job = await backup(stack, 'old', repo, 'failed');
      expect(job.error).toMatch(expected);
      expect(job.error).not.toContain('\n');
      // Nothing of the job (folder, key, credential) ever reached the client.
      expect(existsSync(host.path('.borgcube')), 'a job folder was pushed').toBe(false);
      return job;
    };
    await refused(/^borg 1\.1\.18 at \S+ on the client is not supported \(BorgCube works with borg 1\.2\.x and 1\.4\.x\): .*--borg-deploy if-unsupported/);
    await expectCli(stack, ['client', 'edit', 'old', '--borg-path', host.path('bin/borg20'), '--borg-deploy', 'never']);
    await refused(/^borg 2\.0\.0b14 at \S+ on the client is not supported .*deploy mode is never/);
    await expectCli(stack, ['client', 'edit', 'old', '--borg-path', host.path('bin/nothing-here')]);
    await refused(/^no borg at \S+nothing-here on the client, and its borg deploy mode is never/);
    const shown = await expectCli(stack, ['client', 'show', 'old']);
    expect(shown.out).toMatch(/borg deploy\s+never/);

    // if-unsupported: the server's borg goes into the job folder and the backup succeeds.
    await expectCli(stack, ['client', 'edit', 'old', '--borg-path', host.path('bin/borg20'), '--borg-deploy', 'if-unsupported']);
    const job = await backup(stack, 'old', repo);
    const log = (await jobLogTail(stack.deps, job.id, 100)).map((l) => l.message).join('\n');
    expect(log).toMatch(/borg 2\.0\.0b14 at \S+ on the client is not supported .*; deployed borg 1\.2\.4 \(sha256 /);
    const out = await extract(stack, repo, job.archiveName!);
    expectSameTree(host.path('data'), `${out}${host.path('data')}`);
    const tested = JSON.parse((await expectCli(stack, ['client', 'test', 'old', '--json'])).out) as { borgVersion: string; borgPlan: string };
    expect(tested).toMatchObject({ borgVersion: '2.0.0b14', borgPlan: expect.stringMatching(/^jobs deploy the server's borg/) as string });
    const bad = await stack.cli(['client', 'edit', 'old', '--borg-deploy', 'sometimes']);
    expect(bad.code).not.toBe(0);
    expect(bad.err.trim().split('\n')).toEqual([expect.stringMatching(/^borgcube: .*borgDeploy/) as string]);
  }, 900_000);
});
