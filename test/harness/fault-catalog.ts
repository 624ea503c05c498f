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
 * Leaves the tmpfs at `mount` not one block free: remounted at the size it uses (no memory is
 * written to fill it). borg's pre-commit check wants room for a whole segment (~545 MB) once a
 * repository has a few, so the repository of a prune, check or restore lives on a large tmpfs
 * until the job's borg has started.
 */
async function shrinkToUsed(mount: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const s = statfsSync(mount);
    const used = (s.blocks - s.bfree) * s.bsize;
    const r = await run('mount', ['-o', `remount,size=${used}`, mount]);
    if (r.code === 0 && statfsSync(mount).bavail === 0) return;
    // Something wrote meanwhile (a lock file): measure again.
    if (attempt >= 5) throw new Error(`could not shrink ${mount} to what it uses: ${r.stderr.toString().trim()}`);
  }
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
    // A restore reads the segment files and starts no borg serve (proxy/storage/segment-reader.ts).
    kinds: ['backup'],
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
    name: 'storage disk full (24 MiB tmpfs; under a prune, check or restore: shrunk to its use)',
    kinds: ['backup', 'prune', 'check', 'restore'],
    // A backup fills it as it uploads; a prune or check finds it full when its borg starts (the
    // tmpfs is shrunk while that borg is frozen), and cannot take the repository's lock or commit;
    // a restore only reads the repository, its target is elsewhere.
    expect: 'failed',
    expectFor: { restore: 'succeeded' },
    // One line an operator can act on, at once: not borg's traceback after the retries gave up,
    // nor "exit code 2", nor a check's failure to lock taken for damage.
    error: repositoryDiskFull,
    budgetMs: 2 * minute,
    repository: async (rig, name, kind) => {
      const mount = `${rig.stack.dataDir}-repos/${name}-fs`;
      // 24 MiB fills during the 48 MiB backup; the other kinds' tmpfs is shrunk mid-job (inject).
      await smallFilesystem(mount, kind === 'backup' ? '24m' : '1g', requireAccount(rig.stack.config.accounts.storage));
      // The admin grows the filesystem once the job failed; the next backup must then run.
      return { path: join(mount, 'repo'), afterwards: async () => void (await runChecked('mount', ['-o', 'remount,size=1g', mount])) };
    },
    inject: async (rig, job) => {
      if (job.kind === 'backup') return;
      const repoPath = rig.repoPaths.get(job.repositoryId);
      if (!repoPath) throw new Error(`no path known for the repository of job ${job.id}`);
      await shrinkToUsed(dirname(repoPath));
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
