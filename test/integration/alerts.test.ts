// Issue 6 acceptance, alerts: a webhook receiver (a local HTTP server) and an SMTP sink (a local
// smtp-server) configured through the CLI get one notice when a client's backup fails, one when
// its policy goes stale, and one resolve notice for each when a backup succeeds again — once each,
// even when a delivery is refused at first (Temporal retries it), the sweep runs again, or the
// client fails again while its incident is open. Strings that came from the client reach the
// payloads as data.
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policiesTable, type AlertPayload } from '../../db/schema.js';
import { addClient, updateClient } from '../../services/clients.js';
import { listIncidents } from '../../services/incidents.js';
import { getPolicy } from '../../services/policies.js';
import { backup } from '../harness/backup.js';
import { startSmtpSink, startWebhookReceiver, type SmtpSink, type WebhookReceiver } from '../harness/alert-sinks.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { waitFor } from '../harness/net.js';
import { cleanUpSchedules, expectJobEnds, waitForPolicyIdle, waitForPolicyJob } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

describe('alerts', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let hook: WebhookReceiver;
  let smtp: SmtpSink;

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  const notices = () => hook.accepted.map((a) => a.body).filter((b) => b.kind !== 'test');
  const summary = (b: AlertPayload) => `${b.kind}/${b.state}`;
  const waitForNotices = (n: number) => waitFor(`${n} webhook notices`, () => notices().length >= n && smtp.messages.length >= n + 1, { timeoutMs: 90_000 });

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    [sshd, hook, smtp] = await Promise.all([startClientSshd(), startWebhookReceiver(), startSmtpSink()]);
    host = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/a.txt': 'alpha\n',
        // A "borg" whose version string carries an escape sequence and markup (no spaces: the probe's \S*).
        'bin/oldborg': { type: 'file', content: '#!/bin/sh\nprintf \'borg 1.1.0\\033[31m"<b>&x\\n\'\n', mode: 0o755 },
      },
    });
    await cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
  });
  afterAll(runCleanups);

  it('channels are added, listed without their secrets, and tested', async () => {
    await cli(['alert', 'add-webhook', hook.url]);
    await cli(['alert', 'add-email', '--smtp-url', smtp.url, '--from', 'borgcube@example.com', '--to', 'ops@example.com', '--to', 'oncall@example.com']);
    const list = await cli(['alert', 'list']);
    expect(list.out).toContain('http://127.0.0.1:');
    expect(list.out).toContain('ops@example.com, oncall@example.com via smtp://127.0.0.1:');
    expect(list.out).not.toContain('s3cret');
    const t = await cli(['alert', 'test']);
    expect(t.out.match(/: ok$/gm)).toHaveLength(2);
    expect(hook.accepted.map((a) => a.body.kind)).toEqual(['test']);
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.to.sort()).toEqual(['oncall@example.com', 'ops@example.com']);
    await cli(['alert', 'add-webhook', 'ftp://example.com/x'], 2);
  });

  it('a failed backup fires once, a stale policy fires once, and a good backup resolves both once', async () => {
    // 1. The backup fails (the client's borg is too old); the first delivery is refused: Temporal retries.
    const firstRequest = hook.requests.length;
    hook.refuseNext(1, 503);
    await updateClient(stack.deps, 'web', { borgPath: host.path('bin/oldborg') });
    const failed = await backup(stack, 'web', 'r1', 'failed');
    await waitForNotices(1);
    expect(hook.requests.slice(firstRequest).map((r) => r.status)).toEqual([503, 204]);
    const fired = notices()[0]!;
    expect(fired).toMatchObject({ kind: 'job-failed', state: 'firing', subject: 'client web', link: `${stack.config.web.publicUrl}/jobs/${failed.id}`, resolvedAt: null });
    expect(fired.temporalLink).toBe(`${stack.config.temporal.uiUrl}/namespaces/${stack.config.temporal.namespace}/workflows/${failed.id}`);
    // The client's bytes are data: the escape and the markup survive JSON exactly, and nothing else.
    expect(fired.summary).toContain('borg 1.1.0\u001b[31m"<b>&x at ');
    expect(fired.summary).toContain('on the client is not supported');
    expect(new Date(fired.time).getTime()).toBeGreaterThan(Date.now() - 120_000);

    // 2. The policy's client had no successful backup for longer than its threshold.
    await cli(['policy', 'add', 'web-daily', '--client', 'web', '--repo', 'r1', '--stale-after', '1']);
    const p = await getPolicy(stack.deps, 'web-daily');
    await stack.db.handle.db.update(policiesTable).set({ createdAt: new Date(Date.now() - 3 * 3600_000) }).where(eq(policiesTable.id, p.id));
    await cli(['alert', 'sweep']);
    await waitForNotices(2);
    expect(notices()[1]).toMatchObject({ kind: 'stale', state: 'firing', subject: 'client web (policy web-daily)', link: `${stack.config.web.publicUrl}/clients/web` });
    expect(notices()[1]!.summary).toMatch(/no successful backup of web into r1 since policy web-daily was created 3 h ago; it allows 1 h/);

    // 3. Nothing new while the incidents stay open: another sweep, another failure.
    await cli(['alert', 'sweep']);
    await backup(stack, 'web', 'r1', 'failed');
    await new Promise((r) => setTimeout(r, 3000));
    expect(notices().map(summary)).toEqual(['job-failed/firing', 'stale/firing']);
    expect((await listIncidents(stack.deps)).map((i) => i.kind).sort()).toEqual(['job-failed', 'stale']);

    // 4. The client is fixed; the policy's backup succeeds: both incidents resolve, once each.
    await updateClient(stack.deps, 'web', { borgPath: 'borg' });
    await cli(['policy', 'trigger', 'web-daily']);
    const good = await expectJobEnds(stack, (await waitForPolicyJob(stack, 'web-daily', 'backup', 0, 30_000)).id, 'succeeded');
    await waitForNotices(4);
    await cli(['alert', 'sweep']);
    await waitForPolicyIdle(stack, 'web-daily');
    await new Promise((r) => setTimeout(r, 3000));
    const all = notices();
    expect(all.map(summary).sort()).toEqual(['job-failed/firing', 'job-failed/resolved', 'stale/firing', 'stale/resolved']);
    for (const r of all.filter((b) => b.state === 'resolved')) {
      expect(r.summary).toBe(`backup ${good.archiveName} of web into r1 succeeded`);
      expect(r.link).toBe(`${stack.config.web.publicUrl}/jobs/${good.id}`);
      expect(r.resolvedAt).not.toBeNull();
    }
    expect(new Set(all.map((b) => b.incidentId)).size).toBe(2);
    expect(await listIncidents(stack.deps)).toEqual([]);
    const history = await cli(['alert', 'incidents', '--all']);
    expect(history.out).toMatch(/job-failed\s+client web\s+resolved/);

    // The same four went out by e-mail, as plain text without the client's control characters.
    const mails = smtp.messages.slice(1);
    expect(mails.map((m) => m.subject).sort()).toEqual([
      '[BorgCube] FIRING job-failed: client web',
      '[BorgCube] FIRING stale: client web (policy web-daily)',
      '[BorgCube] RESOLVED job-failed: client web',
      '[BorgCube] RESOLVED stale: client web (policy web-daily)',
    ]);
    for (const m of mails) {
      expect(m.from).toBe('borgcube@example.com');
      expect(m.raw).toMatch(/Content-Type: text\/plain/i);
      expect(m.raw).not.toContain('\u001b');
    }
  });
});
