// The repository service's own lines in a job's log (appendJobLog: violations, service errors)
// quote what a client sent — an argument's text, a path — and must be stored like the worker's
// lines: NUL (which PostgreSQL's text refuses) and terminal escapes as `\xNN`, never lost.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as jobsQ from '../../db/queries/jobs.js';
import { insertRepository } from '../../db/queries/repositories.js';
import { runCleanups } from '../harness/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../harness/db.js';

describe('appendJobLog', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(runCleanups);

  it('stores a line with NUL and terminal escapes, escaped, after the lines already there', async () => {
    const db = t.handle.db;
    const repo = await insertRepository(db, { name: 'r1', path: '/nonexistent/r1', storageHost: 'local', encryption: 'repokey', borgId: 'ab'.repeat(32), keySealed: 'x', passphraseSealed: 'x' });
    const job = await jobsQ.insertJob(db, { id: randomUUID(), kind: 'prune', repositoryId: repo.id });
    await jobsQ.insertLogLines(db, [{ jobId: job.id, seq: 1, time: new Date(), level: 'INFO', type: 'log', msgid: null, message: 'first' }]);
    await jobsQ.appendJobLog(db, job.id, 'violation (bad-arguments): open: path not bytes (string a\u0000b\u001b[2J)', 'ERROR');
    const lines = await jobsQ.lastLogLines(db, job.id, 10);
    expect(lines.map((l) => [l.seq, l.message])).toEqual([
      [1, 'first'],
      [2, 'violation (bad-arguments): open: path not bytes (string a\\x00b\\x1b[2J)'],
    ]);
  });
});
