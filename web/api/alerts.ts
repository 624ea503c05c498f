// /api/v1/alerts — channels, incidents, undeliverable notices, tests and the sweep: the same
// service calls as the console's alerts page and `borgcube alert …`. Roles: viewer reads;
// operator sends tests and runs the sweep; admin adds, enables, disables and removes channels.
import { Hono } from 'hono';
import { z } from 'zod';
import { addEmailChannel, addEmailChannelInput, addWebhookChannel, addWebhookChannelInput, listAlertChannels, removeAlertChannel, setAlertChannelEnabled, testAlertChannels } from '../../services/alert-channels.js';
import { failedNotificationCount, listIncidents, listIncidentsInput } from '../../services/incidents.js';
import { runAlertSweepNow } from '../../services/alert-schedule.js';
import type { WebDeps, WebEnv } from '../env.js';
import { jsonBody } from './body.js';
import { op } from './openapi.js';

const tag = 'alerts';
const idParam = z.object({ id: z.string().uuid().describe('channel id') });
export const setChannelInput = z.object({ enabled: z.boolean().describe('a disabled channel keeps its settings but gets no notices') }).strict();

export function alertsApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag, summary: 'At a glance: channels, open incidents and the number of notices that could not be delivered', role: 'viewer' }), async (c) => {
    const [channels, open, failedNotifications] = await Promise.all([listAlertChannels(s), listIncidents(s, { state: 'open', limit: 500 }), failedNotificationCount(s)]);
    return c.json({ channels, openIncidents: open, failedNotifications });
  });
  app.get('/channels', op({ tag, summary: 'List alert channels (labels only: targets stay sealed)', role: 'viewer' }), async (c) => c.json({ channels: await listAlertChannels(s) }));
  app.post('/channels/webhook', op({ tag, summary: 'Add a webhook channel (JSON POST per incident and resolution)', role: 'admin', body: addWebhookChannelInput, status: 201 }), async (c) =>
    c.json(await addWebhookChannel(s, addWebhookChannelInput.parse(await jsonBody(c))), 201),
  );
  app.post('/channels/email', op({ tag, summary: 'Add an e-mail channel (plain text through an SMTP server)', role: 'admin', body: addEmailChannelInput, status: 201 }), async (c) =>
    c.json(await addEmailChannel(s, addEmailChannelInput.parse(await jsonBody(c))), 201),
  );
  app.patch('/channels/:id', op({ tag, summary: 'Enable or disable a channel', role: 'admin', params: idParam, body: setChannelInput }), async (c) => {
    const input = setChannelInput.parse(await jsonBody(c));
    return c.json(await setAlertChannelEnabled(s, c.req.param('id'), input.enabled));
  });
  app.delete('/channels/:id', op({ tag, summary: 'Remove a channel', role: 'admin', params: idParam, status: 204 }), async (c) => {
    await removeAlertChannel(s, c.req.param('id'));
    return c.body(null, 204);
  });
  app.post('/channels/:id/test', op({ tag, summary: 'Send a test notice to one channel now; reports whether it was delivered', role: 'operator', params: idParam }), async (c) =>
    c.json({ results: await testAlertChannels(s, c.req.param('id')) }),
  );
  app.post('/test', op({ tag, summary: 'Send a test notice to every channel now; reports each', role: 'operator' }), async (c) => c.json({ results: await testAlertChannels(s) }));
  app.get('/incidents', op({ tag, summary: 'Incidents, newest first, with the state of their notices', role: 'viewer', query: listIncidentsInput }), async (c) =>
    c.json({ incidents: await listIncidents(s, listIncidentsInput.parse(c.req.query())) }),
  );
  app.post('/sweep', op({ tag, summary: 'Run the staleness sweep now (it also redelivers pending notices)', role: 'operator', status: 202 }), async (c) => c.json({ scheduleId: await runAlertSweepNow(s) }, 202));
  return app;
}
