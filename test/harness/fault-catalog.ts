// The faults of the suite (issue 22): what each does to a FaultRig while its backup runs, and how
// the job must end. Each brings back what it stopped before returning; faults.ts observes.
import { mkdirSync, rmSync, statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireAccount } from '../../infra/accounts.js';
import { run, runChecked } from '../../infra/subprocess.js';
import { registerCleanup } from './cleanup.js';
import type { Job } from '../../db/schema.js';
import { clientBorgs, serverBorgs, type Fault, type FaultRig } from './faults.js';
import { descendants, isBorg, isProxySession, killPids, processTable } from './proc-table.js';
import { killUserProcesses } from './users.js';

/** Kills every TCP connection to `port` on loopback (the connecting side), as a dropped link would. */
async function dropConnections(port: number): Promise<void> {
  await runChecked('ss', ['-K', '-t', 'dst', '127.0.0.1', 'dport', '=', `:${port}`]);
}

function proxySessions(rig: FaultRig): number[] {
  const sshd = rig.stack.sshd.pid;
  if (!sshd) return [];
  return descendants(processTable(), sshd)
    .filter((p) => isProxySession(p))
    .map((p) => p.pid);
}

function borgServes(rig: FaultRig): number[] {
  const storage = rig.stack.storage.pid;
  if (!storage) return [];
  return descendants(processTable(), storage)
    .filter((p) => isBorg(p, 'serve'))
    .map((p) => p.pid);
}

function mustFind(what: string, pids: number[]): number[] {
  if (!pids.length) throw new Error(`no ${what} to kill`);
  return pids;
}

const minute = 60_000;

/** The repository's disk is full: this line, at once, whatever the job (proxy/storage/api.ts diskFullMessage). */
const repositoryDiskFull = /^the repository's disk on storage host \S+ is full: (No space left on device|Insufficient free space[^;\n]*); free space and run the job again$/;

/**
 * Fills the filesystem of `dir` to its last block (files `filler-*` in it): tmpfs keeps nothing
 * back for root, so every account then finds it full.
 */
async function fillFilesystem(dir: string): Promise<void> {
  await run('dd', ['if=/dev/zero', `of=${join(dir, 'filler-1m')}`, 'bs=1M']);
  await run('dd', ['if=/dev/zero', `of=${join(dir, 'filler-4k')}`, 'bs=4k']);
  const left = statfsSync(dir);
  if (left.bavail !== 0) throw new Error(`${dir} still has ${left.bavail} blocks free after filling it`);
}

/** A tmpfs of `size` at `mount` for `owner`, unmounted at the end of the run. */
async function smallFilesystem(mount: string, size: string, owner: { uid: number; gid: number }): Promise<void> {
  mkdirSync(mount, { recursive: true });
  await runChecked('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700,uid=${owner.uid},gid=${owner.gid}`, 'tmpfs', mount]);
  registerCleanup(`tmpfs ${mount}`, async () => void (await run('umount', ['-l', mount])));
}

/** The server's borg on the job's repository (its path is the repository's). */
function serverBorgsOf(rig: FaultRig, job: Job): number[] {
  const path = rig.repoPaths.get(job.repositoryId);
  return path ? serverBorgs(path).map((p) => p.pid) : [];
}

export const faults = {
  clientBorg: {
    name: "client's borg SIGKILL",
    expect: 'succeeded',
    budgetMs: 3 * minute,
    kinds: ['backup', 'restore'],
    inject: (rig, job) => {
      const sub = job.kind === 'restore' ? 'extract' : 'create';
      return Promise.resolve(killPids(mustFind(`borg ${sub}`, clientBorgs(rig, job.id, processTable(), sub).map((p) => p.pid))));
    },
  },
  clientSsh: {
    name: "worker↔client SSH dropped",
    kinds: ['backup', 'restore'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: (rig) => dropConnections(rig.clientSshd.port),
  },
  borgSsh: {
    name: "client borg↔BorgCube SSH dropped",
    kinds: ['backup', 'restore'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: (rig) => dropConnections(rig.stack.sshd.port),
  },
  clientReboot: {
    name: 'client reboots (processes killed, job folder gone)',
    kinds: ['backup', 'restore'],
    expect: 'succeeded',
    budgetMs: 4 * minute,
    inject: async (rig, job) => {
      await killUserProcesses(rig.host.uid);
      rmSync(rig.host.path('.borgcube', 'jobs', job.id), { recursive: true, force: true });
    },
  },
  proxy: {
    name: 'proxy process SIGKILL',
    kinds: ['backup', 'restore'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: (rig) => Promise.resolve(killPids(mustFind('proxy session', proxySessions(rig)))),
  },
  borgcubeSshd: {
    name: "BorgCube's sshd killed, restarted 5 s later",
    kinds: ['backup', 'restore'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: (rig) => rig.stack.sshd.crashAndRestart(5000),
  },
  storage: {
    name: 'repository service SIGKILL, restarted 2 s later',
    kinds: ['backup', 'restore', 'prune', 'check'],
    expect: 'succeeded',
    budgetMs: 4 * minute,
    inject: async (rig) => {
      await rig.stack.storage.kill();
      await sleep(2000);
      await rig.stack.storage.start();
    },
  },
  borgServe: {
    name: 'its borg serve SIGKILL',
    kinds: ['backup', 'restore'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: (rig) => Promise.resolve(killPids(mustFind('borg serve', borgServes(rig)))),
  },
  worker: {
    name: 'worker SIGKILL, restarted 2 s later',
    kinds: ['backup', 'restore', 'prune', 'check'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: async (rig) => {
      await rig.stack.worker.kill();
      await sleep(2000);
      await rig.stack.worker.start();
    },
  },
  temporal: {
    name: 'Temporal dev server stopped 10 s, started on the same state',
    kinds: ['backup', 'restore', 'prune', 'check'],
    expect: 'succeeded',
    budgetMs: 4 * minute,
    needs: ['temporal'],
    inject: async (rig) => {
      await rig.temporal!.stop();
      await sleep(10_000);
      await rig.temporal!.start();
    },
  },
  postgres: {
    name: 'PostgreSQL stopped 10 s, started again',
    kinds: ['backup', 'restore', 'prune', 'check'],
    expect: 'succeeded',
    budgetMs: 4 * minute,
    needs: ['postgres', 'web'],
    inject: async (rig) => {
      await rig.postgres!.stop();
      await sleep(10_000);
      await rig.postgres!.start();
    },
  },
  redis: {
    name: 'Redis stopped 10 s, started again',
    kinds: ['backup', 'restore', 'prune', 'check'],
    expect: 'succeeded',
    budgetMs: 3 * minute,
    needs: ['redis', 'web'],
    inject: async (rig) => {
      await rig.redis!.stop({ crash: true });
      await sleep(10_000);
      await rig.redis!.start();
    },
  },
  serverBorg: {
    name: "the server's borg (prune, compact, check) SIGKILL",
    kinds: ['prune', 'check'],
    // A check that did not run to its end found nothing: it must not pass (nor raise a false alarm).
    expect: 'succeeded',
    budgetMs: 3 * minute,
    inject: (rig, job) => Promise.resolve(killPids(mustFind('server borg', serverBorgsOf(rig, job)))),
  },
  diskFull: {
    name: 'storage disk full (24 MiB tmpfs; 96 MiB under a restore)',
    kinds: ['backup', 'prune', 'check', 'restore'],
    // A backup fills it as it uploads; a prune or check finds it full when its borg starts (it is
    // filled while that borg is frozen), and cannot take the repository's lock or commit; a
    // restore only reads the repository, its target is elsewhere.
    expect: 'failed',
    expectFor: { restore: 'succeeded' },
    // One line an operator can act on, at once: not borg's traceback after the retries gave up,
    // nor "exit code 2", nor a check's failure to lock taken for damage.
    error: repositoryDiskFull,
    budgetMs: 2 * minute,
    repository: async (rig, name, kind) => {
      const mount = `${rig.stack.dataDir}-repos/${name}-fs`;
      // 24 MiB fills during the 48 MiB backup; a restore's repository holds that archive.
      await smallFilesystem(mount, kind === 'restore' ? '96m' : '24m', requireAccount(rig.stack.config.accounts.storage));
      // The admin frees space once the job failed; the next backup must then run.
      return {
        path: join(mount, 'repo'),
        afterwards: async () => {
          for (const f of ['filler-1m', 'filler-4k']) rmSync(join(mount, f), { force: true });
          await runChecked('mount', ['-o', 'remount,size=256m', mount]);
        },
      };
    },
    inject: async (rig, job) => {
      if (job.kind === 'backup') return;
      const repoPath = rig.repoPaths.get(job.repositoryId);
      if (!repoPath) throw new Error(`no path known for the repository of job ${job.id}`);
      await fillFilesystem(dirname(repoPath));
    },
  },
  restoreTargetFull: {
    name: "restore target's disk on the client full (16 MiB tmpfs)",
    kinds: ['restore'],
    // What the admin must read: which disk, that what was written is incomplete, what to do.
    expect: 'failed',
    error: /^the disk of the restore target \S+ on the client is full \(No space left on device\); the files restored there so far are incomplete: free space there or restore elsewhere, and run the job again$/,
    budgetMs: 2 * minute,
    restoreTarget: async (rig, name) => {
      const mount = rig.host.path(`restore-${name}`);
      await smallFilesystem(mount, '16m', { uid: rig.host.uid, gid: rig.host.gid });
      return { path: mount, afterwards: async () => void (await run('umount', ['-l', mount])) };
    },
    // The 48 MiB restore fills it on its own.
    inject: () => Promise.resolve(),
  },
} satisfies Record<string, Fault>;
