// Issue 22 point 4: damage is found and reported, never repaired behind the admin's back. One
// byte flipped in a segment file; the scheduled check (a Temporal Schedule, real borg) finds it,
// raises `check-failed` with what borg said, and leaves the repository as it found it; the
// console's repository page says which repository is damaged, what borg reported and the repair
// path. Following that path (`borgcube repo repair`, then a check) clears the alert and the page;
// the archive the repair rewrote is re-signed, and the next backup uploads what the repair lost.
import { createHash } from 'node:crypto';
import { closeSync, cpSync, openSync, readdirSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAuditEvents } from '../../db/queries/audit.js';
import { listArchives } from '../../services/archives.js';
import { addClient } from '../../services/clients.js';
import { addUser } from '../../services/users.js';
import { startWebhookReceiver, type WebhookReceiver } from '../harness/alert-sinks.js';
import { backup, extract } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { waitFor } from '../harness/net.js';
import { cleanUpSchedules, expectJobEnds, waitForPolicyJob, waitForPolicyIdle } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';
import { tempDir } from '../harness/temp-dir.js';
import { createStackWebApp } from '../harness/web.js';
import { Browser, password } from './web-browser.js';

describe('a damaged repository', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let hook: WebhookReceiver;
  let admin: Browser;
  const repoPath = () => `${stack.dataDir}-repos/r1`;
  const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    [sshd, hook] = await Promise.all([startClientSshd(), startWebhookReceiver()]);
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/big.bin': { type: 'file', size: 3 * 1024 * 1024, seed: 'd' }, 'data/a.txt': 'alpha\n' } });
    await cli(['repo', 'add', 'r1', '--path', repoPath()]);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    await cli(['alert', 'add-webhook', hook.url]);
    await backup(stack, 'web', 'r1');
    const { app } = createStackWebApp(stack);
    await addUser(stack.deps, { username: 'admin', role: 'admin', password });
    admin = new Browser(app);
    expect((await admin.login('admin')).status).toBe(303);
  });
  afterAll(runCleanups);

  it('the scheduled check finds one flipped byte, alerts with what borg said, and the console says what to do', async () => {
    // One byte in the middle of the largest segment: that entry's CRC no longer matches.
    const dataDir = join(repoPath(), 'data');
    const segments = readdirSync(dataDir).flatMap((d) => readdirSync(join(dataDir, d)).map((f) => join(dataDir, d, f)));
    const segment = segments.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const at = Math.floor(statSync(segment).size / 2);
    const fd = openSync(segment, 'r+');
    try {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      writeSync(fd, Buffer.from([b[0]! ^ 0x01]), 0, 1, at);
    } finally {
      closeSync(fd);
    }
    const damagedSha = sha(segment);
    const page0 = await (await admin.get('/repositories/r1')).text();
    expect(page0).not.toContain('id="repository-damaged"');

    await cli(['policy', 'add', 'web-checked', '--client', 'web', '--repo', 'r1', '--check-cron', '*/2 * * * * * *']);
    const job = await waitForPolicyJob(stack, 'web-checked', 'check', 0, 60_000);
    await cli(['policy', 'pause', 'web-checked']);
    const failed = await expectJobEnds(stack, job.id, 'failed');
    await waitForPolicyIdle(stack, 'web-checked');
    expect(failed.triggeredBy).toMatch(/^schedule policy-.*-check/);
    expect(failed.error).toMatch(/^borg check reported \d+ problem\(s\); first: .*(segment|CRC|checksum|integrity)/i);

    await waitFor('the check-failed alert', () => hook.accepted.some((a) => a.body.kind === 'check-failed'), { timeoutMs: 60_000 });
    const alert = hook.accepted.find((a) => a.body.kind === 'check-failed')!.body;
    expect(alert).toMatchObject({ state: 'firing', subject: 'repository r1', link: `${stack.config.web.publicUrl}/jobs/${job.id}` });
    expect(alert.summary).toBe(`borg check of r1 failed: ${failed.error}`);
    // Never repaired behind the admin's back: the damaged segment is as the test left it.
    expect(sha(segment)).toBe(damagedSha);

    const page = await (await admin.get('/repositories/r1')).text();
    const notice = /<section class="card row-bad" id="repository-damaged">([\s\S]*?)<\/section>/.exec(page)?.[1] ?? '';
    expect(notice).toContain('Repository r1 is damaged');
    expect(notice).toMatch(/borg said:<\/p>\s*<pre class="path">[^<]*(segment|CRC|checksum|integrity)/i);
    expect(notice).toContain(`cp -a ${repoPath()} ${repoPath()}.before-repair`);
    expect(notice).toContain('borgcube repo repair r1 --confirm r1');
    expect(notice).toContain('does not repair it by itself');

    // The repair path as the page gives it: a copy first, the repair, a check.
    cpSync(repoPath(), tempDir('borgcube-test-before-repair'), { recursive: true });
    const ids = async () => new Map((await cli(['borg', 'r1', '--', 'list', '--format', '{archive} {id}{NL}'])).out.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
    const idsBefore = await ids();
    await cli(['repo', 'repair', 'r1', '--confirm', 'r2'], 2);
    const repaired = await cli(['repo', 'repair', 'r1', '--confirm', 'r1']);
    expect(repaired.out).toMatch(/repair of r1 finished/);
    expect((await listAuditEvents(stack.deps.db)).find((e) => e.action === 'repository.repair')).toMatchObject({ target: 'r1' });
    const after = await cli(['policy', 'check', 'web-checked', '--wait']);
    expect(after.out).toMatch(/succeeded/);
    await waitFor('the resolve notice', () => hook.accepted.some((a) => a.body.kind === 'check-failed' && a.body.state === 'resolved'), { timeoutMs: 60_000 });
    expect(await (await admin.get('/repositories/r1')).text()).not.toContain('id="repository-damaged"');
    // The repair replaced the lost chunk by zeros in the archive that referenced it, which gives
    // it a new id and (borg 1.2.4) a TAM that no longer matches: BorgCube re-signed exactly that
    // archive, its record follows the new id, and the caches of the old archive are gone.
    const rewritten = [...(await ids())].filter(([name, id]) => idsBefore.get(name) !== id);
    expect(rewritten).toHaveLength(1);
    expect(repaired.out).toContain(`the repair rewrote 1 archive(s): "${rewritten[0]![0]}"; re-signed with the repository's key: 1`);
    expect(repaired.out).toMatch(/dropped the server's caches of the old archives \(1 client files cache\(s\)/);
    expect((await listArchives(stack.deps, 'r1')).map((a) => a.borgId)).toEqual([rewritten[0]![1]]);
    // The next backup goes into the repaired repository without touching the archive: it must
    // upload the chunk the repair lost again, not reference it (the client's files cache and the
    // chunk index it was handed named it), so its archive extracts the client's very bytes.
    const next = await backup(stack, 'web', 'r1');
    const out = await extract(stack, 'r1', next.archiveName!);
    for (const f of ['big.bin', 'a.txt']) expect(sha(join(out, host.path('data', f)))).toBe(sha(host.path('data', f)));
    const verified = await cli(['borg', 'r1', '--', 'check', '--verify-data']);
    expect(verified.err).not.toMatch(/New missing file chunk/);
  });
});
