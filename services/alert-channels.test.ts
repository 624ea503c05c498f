import { describe, expect, it } from 'vitest';
import type { AlertPayload } from '../db/schema.js';
import { addEmailChannelInput, addWebhookChannelInput } from './alert-channels.js';
import { alertEmail, channelLabel } from './alert-transport.js';

const payload: AlertPayload = {
  kind: 'job-failed',
  state: 'firing',
  subject: 'client web\r\nBcc: victim@example.com',
  summary: 'backup failed: \u001b[31mred\u001b[0m\nsecond line',
  link: 'http://127.0.0.1:8080/jobs/x',
  temporalLink: null,
  time: '2024-01-01T00:00:00.000Z',
  incidentId: 'i',
  openedAt: '2024-01-01T00:00:00.000Z',
  resolvedAt: null,
};

describe('alert e-mails', () => {
  it('keep every field on its own line: no header or line injection, no control characters', () => {
    const m = alertEmail(payload);
    expect(m.subject).toBe('[BorgCube] FIRING job-failed: client web Bcc: victim@example.com');
    expect(m.text).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(m.text.split('\n').filter((l) => l.startsWith('Summary:'))).toEqual(['Summary: backup failed:  [31mred [0m second line']);
    expect(m.text).not.toContain('Temporal:');
  });
});

describe('alert channels', () => {
  it('are shown without their secrets', () => {
    expect(channelLabel({ kind: 'webhook', url: 'https://user:pw@hooks.example.com/services/T0/B0/XYZ?token=1' })).toBe('https://hooks.example.com/…');
    expect(channelLabel({ kind: 'email', smtpUrl: 'smtps://me:pw@mail.example.com:465', from: 'a@b.c', to: ['x@y.z'] })).toBe('x@y.z via smtps://mail.example.com:465');
  });

  it('validate their targets', () => {
    expect(addWebhookChannelInput.safeParse({ url: 'javascript:alert(1)' }).success).toBe(false);
    expect(addWebhookChannelInput.safeParse({ url: 'https://example.com/hook' }).success).toBe(true);
    expect(addEmailChannelInput.parse({ smtpUrl: 'smtp://mail:25', from: 'a@example.com', to: 'x@example.com, y@example.com' }).to).toEqual(['x@example.com', 'y@example.com']);
    expect(addEmailChannelInput.safeParse({ smtpUrl: 'http://mail', from: 'a@example.com', to: 'x@example.com' }).success).toBe(false);
    expect(addEmailChannelInput.safeParse({ smtpUrl: 'smtp://mail', from: 'a@example.com\r\nBcc: z@example.com', to: 'x@example.com' }).success).toBe(false);
  });
});
