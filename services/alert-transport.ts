// How a notice reaches a channel: a JSON POST to a webhook, or a plain-text e-mail through the
// channel's SMTP server. Every string that reaches a payload may come from a client (error
// messages quote borg's output): payloads are JSON (encoded by JSON.stringify), e-mails are plain
// text with control characters removed from every field.
import { createTransport } from 'nodemailer';
import type { AlertPayload } from '../db/schema.js';

/** What a channel sends to; sealed in alert_channels.target_sealed. */
export type AlertChannelTarget = { kind: 'webhook'; url: string } | { kind: 'email'; smtpUrl: string; from: string; to: string[] };

/** A label that shows where a channel points without its secrets (webhook paths often are one). */
export function channelLabel(t: AlertChannelTarget): string {
  if (t.kind === 'webhook') {
    const u = new URL(t.url);
    return `${u.protocol}//${u.host}${u.pathname === '/' && !u.search ? '/' : '/…'}`;
  }
  const u = new URL(t.smtpUrl);
  return `${t.to.join(', ')} via ${u.protocol}//${u.host}`;
}

/** A delivery that failed; `permanent` ones are not worth retrying (e.g. HTTP 404, bad recipient). */
export class AlertDeliveryError extends Error {
  override name = 'AlertDeliveryError';
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();

/** The plain-text e-mail of a notice: subject and body, every field on one line of its own. */
export function alertEmail(p: AlertPayload): { subject: string; text: string } {
  const subject = oneLine(`[BorgCube] ${p.state === 'firing' ? 'FIRING' : 'RESOLVED'} ${p.kind}: ${p.subject}`).slice(0, 250);
  const lines: Array<[string, string | null]> = [
    ['State', p.state],
    ['Kind', p.kind],
    ['Subject', p.subject],
    ['Summary', p.summary],
    ['Console', p.link],
    ['Temporal', p.temporalLink],
    ['Opened', p.openedAt],
    ['Resolved', p.resolvedAt],
    ['Time', p.time],
  ];
  const text = lines
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}: ${oneLine(v!)}`)
    .join('\n');
  return { subject, text: `${text}\n` };
}

export interface SendOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Sends one notice: a JSON POST, or an e-mail through the channel's SMTP server. */
export async function sendAlert(target: AlertChannelTarget, payload: AlertPayload, opts: SendOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  if (target.kind === 'webhook') {
    const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'BorgCube-alerts/1' },
        body: JSON.stringify(payload),
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new AlertDeliveryError(`webhook ${channelLabel(target)}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, false);
    }
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return;
    // Redirects are not followed (a POST body must not wander); 4xx other than 408/429 will not heal by retrying.
    const permanent = res.status >= 300 && res.status < 500 && res.status !== 408 && res.status !== 429;
    throw new AlertDeliveryError(`webhook ${channelLabel(target)} answered HTTP ${res.status}`, permanent);
  }
  const u = new URL(target.smtpUrl);
  const secure = u.protocol === 'smtps:';
  const transport = createTransport({
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : secure ? 465 : 25,
    secure,
    auth: u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : undefined,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs * 2,
  });
  const { subject, text } = alertEmail(payload);
  try {
    await transport.sendMail({ from: target.from, to: target.to, subject, text });
  } catch (err) {
    const e = err as { responseCode?: number; message?: string };
    // 5xx answers (bad recipient, relay refused) are permanent; connection trouble and 4xx are not.
    throw new AlertDeliveryError(`e-mail via ${u.host}: ${oneLine(e.message ?? String(err)).slice(0, 300)}`, typeof e.responseCode === 'number' && e.responseCode >= 500);
  } finally {
    transport.close();
  }
}
