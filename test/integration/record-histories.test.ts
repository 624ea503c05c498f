// Records the histories that workflows/replay.test.ts replays (issue 19 point 6): one real run of
// each workflow on the harness — backup (succeeded, failed, cancelled), prune, check, a scheduled
// backup, the alert sweep and delivery, the cleanup of an orphaned job, restore (succeeded, failed,
// cancelled; see the restore case for the older path's) — written as JSON fixtures
// into workflows/histories/. Runs only with BORGCUBE_RECORD_HISTORIES=1: record again after a
// deliberate change of a workflow's commands (and say so in the commit).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, runChecked } from '../../infra/subprocess.js';
import { addWebhookChannel } from '../../services/alert-channels.js';
import { runAlertSweepNow } from '../../services/alert-schedule.js';
import { addClient } from '../../services/clients.js';
import { cancelJob, startBackup } from '../../services/jobs.js';
import { addPolicy, triggerPolicy } from '../../services/policies.js';
import { startRestore } from '../../services/restores.js';
import { startCheck, startPrune } from '../../services/policy-jobs.js';
import { startWebhookReceiver } from '../harness/alert-sinks.js';
import { backup, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { waitFor } from '../harness/net.js';
import { cleanUpSchedules } from '../harness/policies.js';
import { projectRoot } from '../harness/paths.js';
import { startClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

const historiesDir = fileURLToPath(new URL('../../workflows/histories/', import.meta.url));

describe.skipIf(process.env.BORGCUBE_RECORD_HISTORIES !== '1')('recording workflow histories', () => {
  let stack: TestStack;
  let host: ClientHost;

  /**
   * Waits for the workflow to close and writes its history as `<name>.json`, exported by the
   * Temporal CLI in the JSON form Worker.runReplayHistories reads (the SDK's historyToJSON trips
   * over two copies of protobufjs here).
   */
  async function record(name: string, workflowId: string): Promise<void> {
    await stack.temporal.workflow.getHandle(workflowId).result().catch(() => undefined);
    const { address, namespace } = stack.config.temporal;
    const r = await runChecked(`${projectRoot}/.tools/bin/temporal`, ['workflow', 'show', '--workflow-id', workflowId, '--address', address, '--namespace', namespace, '--output', 'json'], { timeoutMs: 60_000, env: baseEnv({ HOME: stack.dataDir }), maxOutput: 64 * 1024 * 1024 });
    writeFileSync(`${historiesDir}${name}.json`, r.stdout);
  }

  /** The id of the newest closed workflow of a type (those a schedule starts get a time suffix). */
  async function newestClosed(type: string): Promise<string> {
    let id: string | undefined;
    await waitFor(`a closed ${type} workflow`, async () => {
      for await (const wf of stack.temporal.workflow.list({ query: `WorkflowType = '${type}' AND ExecutionStatus != 'Running'` })) {
        id = wf.workflowId;
        return true;
      }
      return false;
    }, { timeoutMs: 120_000 });
    return id!;
  }

  beforeAll(async () => {
    stack = await startStack();
    const [sshd, hook] = await Promise.all([startClientSshd(), startWebhookReceiver()]);
    registerCleanup('schedules', cleanUpSchedules(stack));
    host = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/a.txt': 'alpha\n',
        // A "borg" that answers its version and fails every backup.
        'failing-borg': { type: 'file', mode: 0o755, content: '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "borg 1.2.4"; exit 0; fi\necho "no backup today" >&2\nexit 2\n' },
      },
    });
    await addClient(stack.deps, { name: 'c1', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    await addClient(stack.deps, { name: 'failing', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: host.path('failing-borg') });
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    await addWebhookChannel(stack.deps, { url: hook.url });
  });
  afterAll(runCleanups);

  it('records the backup workflow: succeeded, failed, cancelled', async () => {
    await record('backup-succeeded', (await backup(stack, 'c1', 'r1')).id);
    await record('backup-failed', (await backup(stack, 'failing', 'r1', 'failed')).id);
    const job = await startBackup(stack.deps, { client: 'c1', repository: 'r1', triggeredBy: 'test' });
    await cancelJob(stack.deps, job.id);
    expect((await waitForJob(stack, job.id)).state).toBe('cancelled');
    await record('backup-cancelled', job.id);
  });

  it('records the delivery of the failed backup’s alert', async () => {
    await record('deliver-alert', await newestClosed('deliverAlert'));
  });

  it('records prune, check and a scheduled backup of a policy', async () => {
    await addPolicy(stack.deps, { name: 'p1', client: 'c1', repository: 'r1', retention: { daily: 7 } });
    const pruned = await startPrune(stack.deps, 'p1', 'test');
    await record('prune', pruned.id);
    const checked = await startCheck(stack.deps, { repository: 'r1', triggeredBy: 'test' });
    await record('check', checked.id);
    await triggerPolicy(stack.deps, 'p1');
    await record('scheduled-backup', await newestClosed('scheduledBackup'));
  });

  // restore-succeeded, -failed and -cancelled were recorded when the storage host prepared a
  // restore whole before the client's borg started: the path an older storage host still takes
  // (kept as they are). These are the selection walked while borg starts.
  it('records the restore workflow: succeeded, failed, cancelled', async () => {
    const archive = (await backup(stack, 'c1', 'r1')).archiveName!;
    const admin = { actor: 'test', userId: null, role: 'admin' as const };
    const ok = await startRestore(stack.deps, admin, { archive, target: host.path('restored') });
    expect((await waitForJob(stack, ok.id)).state).toBe('succeeded');
    await record('restore-selecting-succeeded', ok.id);
    const bad = await startRestore(stack.deps, admin, { archive, target: host.path('restored-2'), paths: ['no/such/path'] });
    expect((await waitForJob(stack, bad.id)).state).toBe('failed');
    await record('restore-selecting-failed', bad.id);
    const cancelled = await startRestore(stack.deps, admin, { archive, target: host.path('restored-3') });
    await cancelJob(stack.deps, cancelled.id);
    expect((await waitForJob(stack, cancelled.id)).state).toBe('cancelled');
    await record('restore-selecting-cancelled', cancelled.id);
  });

  it('records the alert sweep', async () => {
    await runAlertSweepNow(stack.deps);
    await record('alerts-sweep', await newestClosed('alertsSweep'));
  });

  it('records the cleanup of a job whose workflow was terminated', async () => {
    const job = await startBackup(stack.deps, { client: 'c1', repository: 'r1', triggeredBy: 'test' });
    await stack.temporal.workflow.getHandle(job.id).terminate('recording an orphan cleanup');
    expect(await cancelJob(stack.deps, job.id)).toBe('ended');
    await record('orphan-cleanup', `cleanup-${job.id}`);
  });
});
