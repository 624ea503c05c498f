import { describe, expect, it } from 'vitest';
import { JOB_LIMIT_DEFAULTS, jobLimitsOf } from '../../db/schema.js';
import { JobQuota } from './job-quota.js';
import { PutIndex } from './put-index.js';
import { PolicyViolation } from './sessions/errors.js';

const kindOf = (fn: () => void) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyViolation) return err.kind;
    throw err;
  }
  return undefined;
};

describe('JobQuota', () => {
  it('refuses the put past the count or the bytes, before counting it', () => {
    const q = new JobQuota({ ...JOB_LIMIT_DEFAULTS, putsPerJob: 3, uploadBytesPerJob: 1000 });
    q.put(100);
    q.put(100);
    expect(kindOf(() => q.put(900))).toBe('quota-upload-bytes');
    q.put(100);
    expect(kindOf(() => q.put(1))).toBe('quota-puts');
    expect(q.puts).toBe(3);
  });

  it('counts plaintext per job', () => {
    const q = new JobQuota({ ...JOB_LIMIT_DEFAULTS, plaintextBytesPerJob: 10 });
    q.plaintext(10);
    expect(kindOf(() => q.plaintext(1))).toBe('quota-plaintext-bytes');
  });

  it('allows commitsPerMinute within any minute, then again once the oldest is a minute old', () => {
    let now = 0;
    const q = new JobQuota({ ...JOB_LIMIT_DEFAULTS, commitsPerMinute: 2 }, () => now);
    q.commit();
    now = 30_000;
    q.commit();
    expect(kindOf(() => q.commit())).toBe('quota-commits');
    now = 60_000;
    q.commit();
    expect(kindOf(() => q.commit())).toBe('quota-commits');
  });
});

describe('client limits', () => {
  it('fills in the defaults and ignores what is not a positive number', () => {
    expect(jobLimitsOf({ putsPerJob: 5 }).putsPerJob).toBe(5);
    expect(jobLimitsOf({ putsPerJob: -1 }).putsPerJob).toBe(JOB_LIMIT_DEFAULTS.putsPerJob);
    expect(jobLimitsOf(undefined)).toEqual(JOB_LIMIT_DEFAULTS);
  });

});

describe('PutIndex', () => {
  it('holds a million puts in a flat table of well under 100 bytes each', () => {
    const p = new PutIndex();
    const id = Buffer.alloc(32);
    for (let i = 0; i < 1_000_000; i++) {
      id.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, 0);
      id.writeUInt32LE(i, 4);
      p.set(id.toString('hex'), { size: i, csize: i + 41 });
    }
    expect(p.size).toBe(1_000_000);
    expect(p.bytes / p.size).toBeLessThan(100);
    id.writeUInt32LE(Math.imul(7, 2654435761) >>> 0, 0);
    id.writeUInt32LE(7, 4);
    expect(p.get(id.toString('hex'))).toEqual({ size: 7, csize: 48 });
    expect(p.has('ff'.repeat(32))).toBe(false);
  });
});
