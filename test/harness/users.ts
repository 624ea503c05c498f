// Tagged Unix users for tests (see tags.ts). No vitest import: the global setup uses this too.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { lookupAccount, runShadowTool, type Account } from '../../infra/accounts.js';
import { userComment, userCommentPattern, userPrefix } from './tags.js';

export interface TaggedUserOptions {
  home: string;
  shell?: string;
}

export function newTestUserName(): string {
  return `${userPrefix}${randomBytes(4).toString('hex')}`;
}

/**
 * Creates the user without a home (the caller makes it: no /etc/skel files in test trees), with
 * the password field '*': sshd with `UsePAM no` refuses key logins to locked ('!') accounts.
 */
export async function createTaggedUser(name: string, opts: TaggedUserOptions): Promise<Account> {
  if (!name.startsWith(userPrefix)) throw new Error(`test users must be named ${userPrefix}…`);
  await runShadowTool('useradd', ['--no-create-home', '--home-dir', opts.home, '--shell', opts.shell ?? '/bin/bash', '--comment', userComment(), '--user-group', '--password', '*', name]);
  const a = lookupAccount(name);
  if (!a) throw new Error(`useradd ${name} did not create the account`);
  return a;
}

function processesOf(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
      if (m && (Number(m[1]) === uid || Number(m[2]) === uid)) pids.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Ends every process of a test user (by pid); userdel refuses users that still run something. */
export async function killUserProcesses(uid: number): Promise<void> {
  if (uid < 1000) throw new Error(`refusing to kill processes of system uid ${uid}`);
  for (let i = 0; i < 40; i++) {
    const pids = processesOf(uid);
    if (!pids.length) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(50);
  }
}

/** Removes a tagged test user, its processes and its home. Idempotent. */
export async function removeTestUser(name: string): Promise<void> {
  if (!name.startsWith(userPrefix)) throw new Error(`${name} is not a test user`);
  const a = lookupAccount(name);
  if (!a) return;
  // Only ever delete accounts this harness made.
  if (!userCommentPattern.test(gecos(name) ?? '')) throw new Error(`${name} is not tagged as a test user; leaving it alone`);
  await killUserProcesses(a.uid);
  // The home goes first: `userdel --remove` deletes it while holding /etc/passwd's lock, and a
  // home with a benchmark's trees kept every other useradd and userdel out for over a minute.
  const ownHome = a.home.startsWith('/') && a.home.includes(name);
  if (ownHome) rmSync(a.home, { recursive: true, force: true });
  // 6: already gone; 12: the home was not there.
  await runShadowTool('userdel', ownHome ? [name] : ['--remove', name], [6, 12]);
}

export function gecos(name: string): string | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name) return f[4];
  }
  return undefined;
}

/** Tagged test users and the pid that owns each. */
export function listTestUsers(): Array<{ name: string; owner: number }> {
  const out: Array<{ name: string; owner: number }> = [];
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    const m = userCommentPattern.exec(f[4] ?? '');
    if (f[0]?.startsWith(userPrefix) && m) out.push({ name: f[0], owner: Number(m[1]) });
  }
  return out;
}
