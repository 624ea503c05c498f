import { describe, expect, it } from 'vitest';
import { addPolicyInput } from './policies.js';
import { cronSchema, parseJitter, scheduleOptions, timezoneSchema } from './policy-schedules.js';
import { scheduledBackup, scheduledMaintenance } from '../workflows/scheduled.js';
import { retentionSchema } from './retention.js';
import type { Policy } from '../db/schema.js';

describe('policy input', () => {
  it('accepts cron expressions, shorthands and intervals; refuses the rest', () => {
    for (const ok of ['0 3 * * *', '*/15 * * * MON-FRI', '0 0 3 * * * *', '@daily', '@every 6h', '@every 30s', '0 4 * * 0#1']) expect(cronSchema.safeParse(ok).success, ok).toBe(true);
    for (const bad of ['', 'daily', '* * *', 'CRON_TZ=UTC 0 3 * * *', '@every 0s', '0 3 * * *; rm -rf /', '0 3\n* * *']) expect(cronSchema.safeParse(bad).success, bad).toBe(false);
  });

  it('accepts IANA time zones only', () => {
    expect(timezoneSchema.safeParse('Europe/Berlin').success).toBe(true);
    expect(timezoneSchema.safeParse('UTC').success).toBe(true);
    expect(timezoneSchema.safeParse('Mars/Olympus').success).toBe(false);
    expect(timezoneSchema.safeParse('../../etc/passwd').success).toBe(false);
  });

  it('takes retention rules borg understands, and nothing else', () => {
    expect(retentionSchema.parse({ keepWithin: '48H', daily: '7' })).toEqual({ keepWithin: '48H', daily: 7 });
    expect(retentionSchema.safeParse({ daily: 0 }).success).toBe(false);
    expect(retentionSchema.safeParse({ keepWithin: '2 days' }).success).toBe(false);
    expect(retentionSchema.safeParse({ secondly: 5 }).success).toBe(false);
    expect(addPolicyInput.parse({ name: 'p', client: 'c', repository: 'r' })).toMatchObject({ backupCrons: [], timezone: 'UTC', retention: {}, staleAfterHours: 36, paused: false });
  });
});

describe('schedule options', () => {
  const policy = { id: '0d9c6f1e-3f6a-4b8e-9c1d-2a3b4c5d6e7f', name: 'p', backupCrons: ['0 3 * * *'], checkCrons: ['0 4 * * 0'], pruneCrons: [], timezone: 'Europe/Berlin', paused: true } as unknown as Policy;
  it('start the scheduled workflows on the main queue with overlap SKIP', () => {
    const b = scheduleOptions({ temporal: { taskQueue: 'q' } as never, schedules: { jitterSeconds: 0 } }, policy, 'backup');
    expect(b).toMatchObject({
      scheduleId: `policy-${policy.id}`,
      spec: { cronExpressions: ['0 3 * * *'], timezone: 'Europe/Berlin' },
      action: { type: 'startWorkflow', workflowType: scheduledBackup, args: [{ policyId: policy.id }], taskQueue: 'q' },
      policies: { overlap: 'SKIP' },
      state: { paused: true },
    });
    const c = scheduleOptions({ temporal: { taskQueue: 'q' } as never, schedules: { jitterSeconds: 0 } }, policy, 'check');
    expect(c).toMatchObject({ scheduleId: `policy-${policy.id}-check`, action: { workflowType: scheduledMaintenance, args: [{ policyId: policy.id, kind: 'check' }] } });
  });

  it("spread scheduled runs with the policy's jitter, else the server default; 0 means none", () => {
    const server = { temporal: { taskQueue: 'q' } as never, schedules: { jitterSeconds: 300 } };
    expect(scheduleOptions(server, policy, 'backup').spec.jitter).toBe(300_000);
    expect(scheduleOptions(server, { ...policy, scheduleJitterSeconds: 600 }, 'check').spec.jitter).toBe(600_000);
    expect(scheduleOptions(server, { ...policy, scheduleJitterSeconds: 0 }, 'backup').spec).not.toHaveProperty('jitter');
  });

  it('read jitter as typed: 10m, 90s, 1h, 0, default', () => {
    expect(['10m', '90s', '90', '1h', '0', 'default', ''].map(parseJitter)).toEqual([600, 90, 90, 3600, 0, null, null]);
    for (const bad of ['-1m', '10 m', '2d', '25h', 'soon']) expect(() => parseJitter(bad), bad).toThrow(/jitter must/);
  });
});
