// Alerts: channels (add a webhook or e-mail, enable, disable, remove, send a test), open and
// recent incidents, undeliverable notices, and the staleness sweep on demand. Every action is a
// service call (services/alert-channels.ts, incidents.ts, alert-schedule.ts) — the same the
// CLI's `borgcube alert …` makes.
//
// Roles: viewer reads; operator sends tests and runs the sweep (they change nothing);
// admin adds, enables, disables and removes channels (configuration).
import { Hono } from 'hono';
import { addEmailChannel, addWebhookChannel, listAlertChannels, removeAlertChannel, setAlertChannelEnabled, testAlertChannels } from '../../services/alert-channels.js';
import { failedNotificationCount, listIncidents } from '../../services/incidents.js';
import { runAlertSweepNow } from '../../services/alert-schedule.js';
import type { Principal } from '../../services/auth.js';
import { principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { alertsBody, alertsDoneNote, testResults, type AlertsPageData, type EmailFormState, type WebhookFormState } from '../views/alerts.js';
import { formProblem } from '../views/form-problem.js';
import { layout, type Html } from '../views/layout.js';
import { formFields } from './form.js';

/** How many resolved incidents the page lists. */
const recentLimit = 50;

export function alertsPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  const data = async (): Promise<AlertsPageData> => {
    const [channels, open, recent, failedNotifications] = await Promise.all([
      listAlertChannels(s),
      listIncidents(s, { state: 'open', limit: 500 }),
      listIncidents(s, { state: 'resolved', limit: recentLimit }),
      failedNotificationCount(s),
    ]);
    return { channels, open, recent, failedNotifications };
  };

  const page = async (p: Principal, o: Parameters<typeof alertsBody>[2] = {}): Promise<Html> => layout({ title: 'Alerts', principal: p, active: 'alerts', body: alertsBody(p, await data(), o) });

  app.get('/', requireRole('viewer'), async (c) => c.html(await page(principalOf(c), { note: alertsDoneNote(c.req.query('done')) })));

  app.post('/webhook', requireRole('admin'), async (c) => {
    const f = await formFields(c);
    const webhook: WebhookFormState = { values: { url: f.url ?? '' } };
    try {
      await addWebhookChannel(s, webhook.values);
      return c.redirect('/alerts?done=webhook-added', 303);
    } catch (err) {
      webhook.problem = formProblem(err, (path) => (path[0] === 'url' ? { field: 'url' } : undefined));
      return c.html(await page(principalOf(c), { webhook }), webhook.problem.status);
    }
  });

  app.post('/email', requireRole('admin'), async (c) => {
    const f = await formFields(c);
    const email: EmailFormState = { values: { smtpUrl: f.smtpUrl ?? '', from: f.from ?? '', to: f.to ?? '' } };
    try {
      await addEmailChannel(s, email.values);
      return c.redirect('/alerts?done=email-added', 303);
    } catch (err) {
      email.problem = formProblem(err, (path) => {
        const [head, i] = path;
        if (head === 'to') return { field: 'to', prefix: typeof i === 'number' ? `address ${i + 1}: ` : '' };
        return head === 'smtpUrl' || head === 'from' ? { field: head } : undefined;
      });
      return c.html(await page(principalOf(c), { email }), email.problem.status);
    }
  });

  for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
    app.post(`/channels/:id/${action}`, requireRole('admin'), async (c) => {
      await setAlertChannelEnabled(s, c.req.param('id'), enabled);
      return c.redirect(`/alerts?done=${action}d`, 303);
    });
  }

  app.post('/channels/:id/delete', requireRole('admin'), async (c) => {
    await removeAlertChannel(s, c.req.param('id'));
    return c.redirect('/alerts?done=removed', 303);
  });

  app.post('/channels/:id/test', requireRole('operator'), async (c) => {
    const results = await testAlertChannels(s, c.req.param('id'));
    return c.html(await page(principalOf(c), { note: testResults(results) }));
  });

  app.post('/test', requireRole('operator'), async (c) => {
    const results = await testAlertChannels(s);
    return c.html(await page(principalOf(c), { note: testResults(results) }));
  });

  app.post('/sweep', requireRole('operator'), async (c) => {
    await runAlertSweepNow(s);
    return c.redirect('/alerts?done=swept', 303);
  });
  return app;
}
