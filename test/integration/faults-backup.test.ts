// Issue 22, the fault suite's quick part: a backup hit mid-stream by the death of one of its own
// processes ends `succeeded` after a retry or re-attach, within the stated time, with never two
// borg processes or proxy sessions for the job at once, every archive kept, `borg check` (real
// key) clean after a compact, no stale lock, nothing left on the client, and the next backup
// runs. A full repository disk ends the job `failed` at once with one clear line (no retries).
// The faults that stop shared servers (Temporal, PostgreSQL, Redis) and the dropped links run in
// `npm run chaos` (bench/chaos.ts), on servers of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCleanups } from '../harness/cleanup.js';
import { faults } from '../harness/fault-catalog.js';
import { runFault, startFaultRig, type Fault, type FaultRig } from '../harness/faults.js';
import { testTemporal } from '../harness/temporal.js';

describe('faults during a backup', () => {
  let rig: FaultRig;
  beforeAll(async () => {
    rig = await startFaultRig({ temporal: testTemporal() });
  });
  afterAll(runCleanups);

  const cases: Fault[] = [faults.clientBorg, faults.proxy, faults.borgServe, faults.clientReboot, faults.diskFull];
  for (const fault of cases) {
    it(`${fault.name}: ends ${fault.expect} within ${fault.budgetMs / 1000} s, and nothing is lost`, async () => {
      const o = await runFault(rig, fault);
      expect(o.notes, o.notes.join('\n')).toEqual([]);
      expect(o.checks).toEqual({ outcome: true, single: true, archivesKept: true, borgCheck: true, noStaleLock: true, clientClean: true, nextBackup: true, webAnswered: true });
      expect(o.state).toBe(fault.expect);
      // A failure that no retry can mend fails the job at once: borg ran once.
      if (fault.expect === 'failed') expect(o.recovery).not.toMatch(/borg ran \d+×/);
    }, 420_000);
  }
});
