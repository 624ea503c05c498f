import { describe, expect, it } from 'vitest';
import type { Db } from '../../db/client.js';
import type { Logger } from '../../infra/logger.js';
import type { SessionRegistry } from './session-registry.js';
import { Violations } from './violations.js';

/** A database that is down: every query fails, and each attempt is counted. */
function downDb() {
  const calls = { n: 0 };
  const db = {
    select: () => {
      calls.n++;
      throw new Error('connection refused');
    },
  } as unknown as Db;
  return { db, calls };
}

const log = { warn: () => {}, info: () => {} } as unknown as Logger;

describe('Violations', () => {
  it('a violation the database failed to record is tried again at the next refusal of its kind, not dropped as recorded', async () => {
    const { db, calls } = downDb();
    const aborted: string[] = [];
    const sessions = { abortJob: (jobId: string) => aborted.push(jobId) } as unknown as SessionRegistry;
    const v = new Violations({ db, log }, sessions);
    await expect(v.record('job-1', 'quota-puts', 'first')).rejects.toThrow('connection refused');
    await expect(v.record('job-1', 'quota-puts', 'second')).rejects.toThrow('connection refused');
    // Both refusals reached the database: the first failure did not mark the kind as recorded.
    expect(calls.n).toBe(2);
    // The job's sessions end whether or not the record could be written.
    expect(aborted).toEqual(['job-1', 'job-1']);
  });
});
