// Alert channels: where notices go (webhooks and e-mail). A channel's target may hold secrets
// (webhook tokens, SMTP passwords): it is sealed with the master key, and shown only by its label.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import * as alertsQ from '../db/queries/alerts.js';
import type { AlertChannel, AlertPayload } from '../db/schema.js';
import type { MasterKey } from '../infra/secrets.js';
import { channelLabel, sendAlert, type AlertChannelTarget } from './alert-transport.js';
import type { ServiceDeps } from './deps.js';
import { invalid, notFound } from './errors.js';

const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);

/** A URL of one of `protocols` with a host (a control character would reach a log or a header). */
const urlOf = (protocols: string[], message: string) =>
  z
    .string()
    .trim()
    .max(2000)
    .refine((s) => {
      try {
        const u = new URL(s);
        return protocols.includes(u.protocol) && u.hostname !== '' && noControl(s);
      } catch {
        return false;
      }
    }, message);

const httpUrl = urlOf(['http:', 'https:'], 'must be an http:// or https:// URL');
const smtpUrl = urlOf(['smtp:', 'smtps:'], 'must be an smtp:// or smtps:// URL, e.g. smtp://mail.example.com:587 or smtps://user:password@mail.example.com');

const emailAddress = z.email('must be an e-mail address').max(320);

export const addWebhookChannelInput = z.object({ url: httpUrl });
export const addEmailChannelInput = z.object({
  smtpUrl,
  from: emailAddress,
  /** One address or several (a list, or one string with commas). */
  to: z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(emailAddress).min(1, 'at least one recipient').max(50)),
});

export type AlertChannelView = Omit<AlertChannel, 'targetSealed'>;

const channelContext = (id: string) => `alert-channel:${id}`;
const channelId = z.string().uuid('not a channel id (see `borgcube alert list`)');

function viewOf(row: AlertChannel): AlertChannelView {
  const { targetSealed: _t, ...view } = row;
  return view;
}

async function insertChannel(deps: Pick<ServiceDeps, 'db' | 'log' | 'masterKey'>, target: AlertChannelTarget): Promise<AlertChannelView> {
  const id = randomUUID();
  const row = await alertsQ.insertChannel(deps.db, { id, kind: target.kind, label: channelLabel(target), targetSealed: deps.masterKey().seal(JSON.stringify(target), channelContext(id)) });
  deps.log.info({ channel: id, kind: target.kind, label: row.label }, 'alert channel added');
  return viewOf(row);
}

export async function addWebhookChannel(deps: Pick<ServiceDeps, 'db' | 'log' | 'masterKey'>, raw: z.input<typeof addWebhookChannelInput>): Promise<AlertChannelView> {
  const input = addWebhookChannelInput.parse(raw);
  return insertChannel(deps, { kind: 'webhook', url: input.url });
}

export async function addEmailChannel(deps: Pick<ServiceDeps, 'db' | 'log' | 'masterKey'>, raw: z.input<typeof addEmailChannelInput>): Promise<AlertChannelView> {
  const input = addEmailChannelInput.parse(raw);
  return insertChannel(deps, { kind: 'email', smtpUrl: input.smtpUrl, from: input.from, to: input.to });
}

export async function listAlertChannels(deps: Pick<ServiceDeps, 'db'>): Promise<AlertChannelView[]> {
  return (await alertsQ.listChannels(deps.db)).map(viewOf);
}

async function findChannel(db: Db, id: string): Promise<AlertChannel> {
  if (!channelId.safeParse(id).success) throw invalid(`${JSON.stringify(id)} is not a channel id (see \`borgcube alert list\`)`);
  const row = await alertsQ.findChannelById(db, id);
  if (!row) throw notFound('alert channel', id);
  return row;
}

export async function removeAlertChannel(deps: Pick<ServiceDeps, 'db' | 'log'>, id: string): Promise<void> {
  await findChannel(deps.db, id);
  await alertsQ.deleteChannel(deps.db, id);
  deps.log.info({ channel: id }, 'alert channel removed');
}

/** A disabled channel keeps its configuration but gets no new notices. */
export async function setAlertChannelEnabled(deps: Pick<ServiceDeps, 'db'>, id: string, enabled: boolean): Promise<AlertChannelView> {
  await findChannel(deps.db, id);
  const row = (await alertsQ.setChannelEnabled(deps.db, id, enabled))!;
  return viewOf(row);
}

export function openChannelTarget(masterKey: MasterKey, row: AlertChannel): AlertChannelTarget {
  return JSON.parse(masterKey.openText(row.targetSealed, channelContext(row.id))) as AlertChannelTarget;
}

/** Sends a test notice to one channel or all of them, now (not through Temporal); reports each. */
export async function testAlertChannels(deps: Pick<ServiceDeps, 'db' | 'config' | 'masterKey'>, id?: string): Promise<Array<{ channel: AlertChannelView; ok: boolean; error?: string }>> {
  const rows = id ? [await findChannel(deps.db, id)] : await alertsQ.listChannels(deps.db);
  const payload: AlertPayload = {
    kind: 'test',
    state: 'firing',
    subject: 'BorgCube',
    summary: 'a test notice from `borgcube alert test`: this channel works',
    link: `${deps.config.web.publicUrl}/`,
    temporalLink: null,
    time: new Date().toISOString(),
    incidentId: null,
    openedAt: null,
    resolvedAt: null,
  };
  const out: Array<{ channel: AlertChannelView; ok: boolean; error?: string }> = [];
  for (const row of rows) {
    try {
      await sendAlert(openChannelTarget(deps.masterKey(), row), payload);
      out.push({ channel: viewOf(row), ok: true });
    } catch (err) {
      out.push({ channel: viewOf(row), ok: false, error: (err as Error).message });
    }
  }
  return out;
}
