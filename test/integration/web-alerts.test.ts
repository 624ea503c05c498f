// Alert channels and incidents in the console and the JSON API (web-stack-app.ts): adding
// channels (bad input refused and kept), testing, switching and removing them, incidents and
// undeliverable notices shown as text, and the routes' roles in the OpenAPI document.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { alertNotificationsTable, incidentsTable } from '../../db/schema.js';
import type { WebApp } from '../../web/app.js';
import { startWebhookReceiver } from '../harness/alert-sinks.js';
import type { TestStack } from '../harness/stack.js';
import type { Browser } from './web-browser.js';
import { useWebStackApp } from './web-stack-app.js';

describe('alerts in the console and the API', () => {
  const w = useWebStackApp();
  let stack: TestStack;
  let app: WebApp;
  let admin: Browser;
  let op: Browser;
  let viewer: Browser;
  beforeAll(() => {
    ({ stack, app, admin, op, viewer } = w);
  });

  const json = async <T>(res: Response) => (await res.json()) as T;

  it('manages alert channels: add (bad input refused and kept), test, disable, enable, remove', async () => {
    const hook = await startWebhookReceiver();
    const bad = await admin.post('/alerts/webhook', { url: 'ftp://example.org/"><b>x' });
    expect(bad.status).toBe(400);
    const badPage = await bad.text();
    expect(badPage).toContain('id="error-url">must be an http:// or https:// URL');
    expect(badPage).toContain('value="ftp://example.org/&quot;&gt;&lt;b&gt;x"');
    expect((await admin.post('/alerts/webhook', { url: hook.url }, { csrf: false })).status).toBe(403);
    expect((await op.post('/alerts/webhook', { url: hook.url })).status).toBe(403);
    const added = await admin.post('/alerts/webhook', { url: hook.url });
    expect(added.status).toBe(303);
    const badMail = await admin.post('/alerts/email', { smtpUrl: 'smtp://mail.example.org:587', from: 'borgcube@example.org', to: 'ops@example.org, not-an-address' });
    expect(badMail.status).toBe(400);
    expect(await badMail.text()).toMatch(/id="error-to">address 2: /);
    const mail = await admin.api('POST', '/api/v1/alerts/channels/email', { smtpUrl: 'smtp://mail.example.org:587', from: 'borgcube@example.org', to: ['ops@example.org'] });
    expect(mail.status).toBe(201);
    const { channels } = await json<{ channels: Array<{ id: string; kind: string; label: string; enabled: boolean }> }>(await viewer.api('GET', '/api/v1/alerts/channels'));
    expect(channels.map((c) => c.kind)).toEqual(['webhook', 'email']);
    const webhook = channels[0]!;
    // The list shows where it points, never the token in the URL.
    const page = await (await viewer.get('/alerts')).text();
    expect(page).toContain(webhook.label);
    expect(page).not.toContain('s3cret');
    expect(page).not.toContain('/alerts/channels/'); // a viewer gets no buttons

    // Test: an operator may; the receiver got it.
    expect((await viewer.post(`/alerts/channels/${webhook.id}/test`, {})).status).toBe(403);
    const tested = await op.post(`/alerts/channels/${webhook.id}/test`, {});
    expect(tested.status).toBe(200);
    expect(await tested.text()).toMatch(/id="test-results"[\s\S]*delivered/);
    expect(hook.accepted.map((a) => a.body.kind)).toEqual(['test']);
    const apiTest = await json<{ results: Array<{ ok: boolean }> }>(await op.api('POST', `/api/v1/alerts/channels/${webhook.id}/test`));
    expect(apiTest.results).toEqual([expect.objectContaining({ ok: true })]);

    // Disable and enable (admin only), then remove.
    expect((await op.post(`/alerts/channels/${webhook.id}/disable`, {})).status).toBe(403);
    expect((await admin.post(`/alerts/channels/${webhook.id}/disable`, {})).status).toBe(303);
    expect((await json<{ channels: Array<{ enabled: boolean }> }>(await viewer.api('GET', '/api/v1/alerts/channels'))).channels[0]!.enabled).toBe(false);
    const enabled = await admin.api('PATCH', `/api/v1/alerts/channels/${webhook.id}`, { enabled: true });
    expect(await json<{ enabled: boolean }>(enabled)).toMatchObject({ enabled: true });
    expect((await op.api('DELETE', `/api/v1/alerts/channels/${webhook.id}`)).status).toBe(403);
    expect((await admin.post(`/alerts/channels/${webhook.id}/delete`, {})).status).toBe(303);
    expect((await admin.api('DELETE', `/api/v1/alerts/channels/${webhook.id}`)).status).toBe(404);
    expect((await admin.api('DELETE', '/api/v1/alerts/channels/not-a-uuid')).status).toBe(400);
    const left = (await json<{ channels: Array<{ kind: string }> }>(await viewer.api('GET', '/api/v1/alerts/channels'))).channels;
    expect(left.map((c) => c.kind)).toEqual(['email']);
  });

  it('shows open and resolved incidents as text, and the undeliverable notices', async () => {
    const [open] = await stack.deps.db
      .insert(incidentsTable)
      .values({ kind: 'job-failed', subjectKey: `client:${randomUUID()}`, subject: 'client <i>evil</i>', summary: 'backup failed: <script>alert("incident")</script>' })
      .returning();
    await stack.deps.db.insert(incidentsTable).values({
      kind: 'stale',
      subjectKey: `policy:${randomUUID()}`,
      subject: 'client web (policy nightly)',
      summary: 'no backup for 50 h',
      openedAt: new Date(Date.now() - 3600_000),
      resolvedAt: new Date(),
      resolveSummary: 'the policy was paused',
    });
    const channel = (await json<{ channels: Array<{ id: string }> }>(await viewer.api('GET', '/api/v1/alerts/channels'))).channels[0]!;
    await stack.deps.db.insert(alertNotificationsTable).values({
      incidentId: open!.id,
      channelId: channel.id,
      event: 'firing',
      state: 'failed',
      attempts: 5,
      lastError: 'e-mail via mail.example.org: <b>550</b> no such user',
      payload: { kind: 'job-failed', state: 'firing', subject: 'x', summary: 'x', link: '/', temporalLink: null, time: new Date().toISOString(), incidentId: open!.id, openedAt: null, resolvedAt: null },
    });
    const page = await (await viewer.get('/alerts')).text();
    expect(page).not.toContain('<script>alert');
    expect(page).not.toContain('<i>evil</i>');
    expect(page).not.toContain('<b>550</b>');
    expect(page).toContain('backup failed: &lt;script&gt;alert(&quot;incident&quot;)&lt;/script&gt;');
    expect(page).toContain('&lt;b&gt;550&lt;/b&gt; no such user');
    expect(page).toMatch(/id="failed-count"><span class="n">1<\/span>/);
    expect(page).toMatch(/id="open-incidents"[\s\S]*client &lt;i&gt;evil&lt;\/i&gt;/);
    expect(page).toMatch(/id="recent-incidents"[\s\S]*the policy was paused/);
    const api = await json<{ openIncidents: Array<{ subject: string }>; failedNotifications: number }>(await viewer.api('GET', '/api/v1/alerts'));
    expect(api).toMatchObject({ failedNotifications: 1, openIncidents: [{ subject: 'client <i>evil</i>' }] });
    const resolved = await json<{ incidents: Array<{ kind: string }> }>(await viewer.api('GET', '/api/v1/alerts/incidents?state=resolved'));
    expect(resolved.incidents.map((i) => i.kind)).toEqual(['stale']);
  });

  it('documents the new routes in the OpenAPI document with their roles', async () => {
    const doc = await json<{ paths: Record<string, Record<string, { 'x-required-role': string }>> }>(await app.request('/api/v1/openapi.json'));
    expect(doc.paths['/policies']!.post!['x-required-role']).toBe('admin');
    expect(doc.paths['/policies/{name}/pause']!.post!['x-required-role']).toBe('operator');
    expect(doc.paths['/policies/{name}/trigger']!.post!['x-required-role']).toBe('operator');
    expect(doc.paths['/policies/{name}']!.get!['x-required-role']).toBe('viewer');
    expect(doc.paths['/repositories/{name}/checks']!.get!['x-required-role']).toBe('viewer');
    expect(doc.paths['/alerts/channels/webhook']!.post!['x-required-role']).toBe('admin');
    expect(doc.paths['/alerts/channels/{id}/test']!.post!['x-required-role']).toBe('operator');
    expect(doc.paths['/alerts/incidents']!.get!['x-required-role']).toBe('viewer');
  });
});
