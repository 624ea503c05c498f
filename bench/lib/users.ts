// Unix users that play the client machines (and, for direct Borg, the repository host): fresh,
// unprivileged, tagged (tags.ts), with ~/.ssh ready for key logins through a loopback sshd.
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateEd25519 } from '../../infra/ssh-keygen.js';
import { lookupAccount } from '../../infra/accounts.js';
import { runChecked } from '../../infra/subprocess.js';
import { onCleanup } from './cleanup.js';
import { newUserName, removeBenchUser, userComment } from './tags.js';

export interface BenchUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** The user's own key pair (~/.ssh/id_ed25519), for logins from this user to others. */
  privateKeyPath: string;
  publicKey: string;
  /** Appends a line to ~/.ssh/authorized_keys. */
  authorize(publicKey: string, options?: string): void;
  /** Writes a file owned by the user (mode 0600 unless given). */
  writeFile(path: string, content: string | Buffer, mode?: number): void;
  /** mkdir -p owned by the user. */
  mkdir(path: string, mode?: number): void;
}

export async function createBenchUser(): Promise<BenchUser> {
  const name = newUserName();
  const home = join('/home', name);
  onCleanup(`user ${name}`, () => removeBenchUser(name));
  // Password field '*': sshd with `UsePAM no` refuses key logins to locked ('!') accounts.
  await runChecked('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/bin/sh', '--comment', userComment(), '--user-group', '--password', '*', name]);
  const a = lookupAccount(name);
  if (!a) throw new Error(`useradd ${name} did not create the account`);
  const own = (p: string) => chownSync(p, a.uid, a.gid);
  mkdirSync(home, { mode: 0o700 });
  own(home);
  const sshDir = join(home, '.ssh');
  mkdirSync(sshDir, { mode: 0o700 });
  own(sshDir);
  const authorizedKeys = join(sshDir, 'authorized_keys');
  writeFileSync(authorizedKeys, '', { mode: 0o600 });
  own(authorizedKeys);
  const pair = generateEd25519(name);
  const privateKeyPath = join(sshDir, 'id_ed25519');
  writeFileSync(privateKeyPath, pair.private, { mode: 0o600 });
  own(privateKeyPath);
  return {
    name,
    uid: a.uid,
    gid: a.gid,
    home,
    privateKeyPath,
    publicKey: pair.public.trim(),
    authorize: (publicKey, options) => writeFileSync(authorizedKeys, `${options ? `${options} ` : ''}${publicKey.trim()}\n`, { flag: 'a' }),
    writeFile: (path, content, mode = 0o600) => {
      writeFileSync(path, content, { mode });
      own(path);
    },
    mkdir: (path, mode = 0o700) => {
      mkdirSync(path, { recursive: true, mode });
      own(path);
    },
  };
}
