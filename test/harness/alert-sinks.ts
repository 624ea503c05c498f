// Where test alerts go: a local HTTP server standing in for a webhook receiver, and an SMTP sink
// (smtp-server) standing in for a mail relay. Both record what they accepted; the webhook can
// be told to refuse the next requests, to see Temporal retry the delivery.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { AlertPayload } from '../../db/schema.js';
import { registerCleanup } from './cleanup.js';

export interface WebhookReceiver {
  url: string;
  /** Requests answered 2xx, in arrival order. */
  accepted: Array<{ body: AlertPayload; headers: IncomingHttpHeaders }>;
  /** Every request, with the status it got. */
  requests: Array<{ status: number; body: string }>;
  /** Answer the next `n` requests with `status` instead of 204. */
  refuseNext(n: number, status?: number): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const accepted: WebhookReceiver['accepted'] = [];
  const requests: WebhookReceiver['requests'] = [];
  let refuse = 0;
  let refuseStatus = 503;
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      let status = 204;
      if (req.method !== 'POST' || req.headers['content-type'] !== 'application/json') status = 400;
      else if (refuse > 0) {
        refuse--;
        status = refuseStatus;
      }
      requests.push({ status, body });
      if (status === 204) accepted.push({ body: JSON.parse(body) as AlertPayload, headers: req.headers });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = registerCleanup(`webhook receiver :${port}`, () => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${port}/hooks/borgcube?token=s3cret`,
    accepted,
    requests,
    refuseNext(n, status = 503) {
      refuse = n;
      refuseStatus = status;
    },
    close,
  };
}

export interface SmtpMessage {
  from: string;
  to: string[];
  raw: string;
  subject: string;
}

export interface SmtpSink {
  url: string;
  messages: SmtpMessage[];
  close(): Promise<void>;
}

/** A mail server that accepts everything (no TLS, no auth) and keeps the messages. */
export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: SmtpMessage[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(parts).toString('utf8');
        const subject = /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)?.[1]?.replace(/\r?\n[ \t]/g, ' ') ?? '';
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  const close = registerCleanup(`SMTP sink :${port}`, () => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `smtp://127.0.0.1:${port}`, messages, close };
}
