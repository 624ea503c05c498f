// Unix accounts: look up, and create the service accounts. useradd is the only way we create them.
import { readFileSync } from 'node:fs';
import { runChecked } from './subprocess.js';

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
  await runChecked('useradd', ['--system', '--user-group', '--home-dir', opts.home, '--create-home', '--shell', opts.shell, '--comment', opts.comment, name]);
  return requireAccount(name);
}
