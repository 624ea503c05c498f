// Unix accounts: look up, and create the service accounts. useradd is the only way we create them.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, run, type RunResult } from './subprocess.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Reads /etc/passwd (local accounts are all BorgCube creates or needs). */
export function lookupAccount(name: string, passwdPath = '/etc/passwd'): Account | undefined {
  for (const line of readFileSync(passwdPath, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 7 && f[0] === name) {
      return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
    }
  }
  return undefined;
}

/** useradd, userdel and usermod say this (exit 1) while another of them holds /etc/passwd. */
const lockBusy = /cannot lock \/etc\/(passwd|group|shadow|gshadow|subuid|subgid)/;

/**
 * Runs a shadow tool (useradd, userdel, usermod), waiting while another one holds the account
 * files' lock: they give up at once instead of waiting (shadow 4.13), and config management, a
 * package's postinst or a parallel test may hold it for a moment. Other failures are thrown as is.
 * `accept` lists exit codes besides 0 that the caller handles itself.
 */
export async function runShadowTool(file: 'useradd' | 'userdel' | 'usermod', args: readonly string[], accept: readonly number[] = []): Promise<RunResult> {
  const deadline = Date.now() + 60_000;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    const r = await run(file, args);
    if (r.code === 0 || (r.code !== null && accept.includes(r.code))) return r;
    if (!lockBusy.test(r.stderr.toString('utf8')) || Date.now() + wait > deadline) throw new CommandError([file, ...args.slice(0, 3)].join(' '), r);
    await sleep(wait + Math.floor(Math.random() * wait));
  }
}

export function requireAccount(name: string): Account {
  const a = lookupAccount(name);
  if (!a) throw new Error(`the account ${name} does not exist (npm start creates it)`);
  return a;
}

export function lookupGroupId(name: string): number | undefined {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] === name) return Number(f[2]);
  }
  return undefined;
}

/**
 * Creates a system account if missing. `shell` must be a real shell for accounts that run an
 * SSH forced command (sshd runs it through the login shell).
 */
export async function ensureSystemAccount(name: string, opts: { home: string; shell: string; comment: string }): Promise<Account> {
  const existing = lookupAccount(name);
  if (existing) return existing;
  await runShadowTool('useradd', ['--system', '--user-group', '--home-dir', opts.home, '--create-home', '--shell', opts.shell, '--comment', opts.comment, name]);
  return requireAccount(name);
}

/** The password field of /etc/shadow ('!…' = locked, '*' = no password but not locked). */
export function shadowPasswordField(name: string, shadowPath = '/etc/shadow'): string | undefined {
  for (const line of readFileSync(shadowPath, 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 2 && f[0] === name) return f[1];
  }
  return undefined;
}

/**
 * Lets an account log in with a key when sshd runs with `UsePAM no`: sshd then refuses accounts
 * whose password is locked ('!', useradd's default), even for public-key logins. '*' means "no
 * password can match" without locking the account.
 */
export async function allowKeyOnlyLogin(name: string): Promise<boolean> {
  const field = shadowPasswordField(name);
  if (field === undefined) throw new Error(`the account ${name} has no /etc/shadow entry`);
  if (!field.startsWith('!')) return false;
  await runShadowTool('usermod', ['--password', '*', name]);
  return true;
}

/** Sets the login shell if it differs (sshd runs an account's forced command through it). */
export async function ensureShell(name: string, shell: string): Promise<boolean> {
  const a = requireAccount(name);
  if (a.shell === shell) return false;
  await runShadowTool('usermod', ['--shell', shell, name]);
  return true;
}
