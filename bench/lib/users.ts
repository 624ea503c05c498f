// Unix users that play the client machines (and, for direct Borg, the repository host): the
// harness's client hosts (test/harness/client-host.ts), plus a key pair of their own for logins
// from this user to others and helpers to write files they own.
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateEd25519 } from '../../infra/ssh-keygen.js';
import { createClientHost } from '../../test/harness/client-host.js';

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
  const host = await createClientHost({ shell: '/bin/sh' });
  const own = (p: string) => chownSync(p, host.uid, host.gid);
  const pair = generateEd25519(host.username);
  const privateKeyPath = join(host.home, '.ssh', 'id_ed25519');
  writeFileSync(privateKeyPath, pair.private, { mode: 0o600 });
  own(privateKeyPath);
  return {
    name: host.username,
    uid: host.uid,
    gid: host.gid,
    home: host.home,
    privateKeyPath,
    publicKey: pair.public.trim(),
    authorize: (publicKey, options) => host.authorize(publicKey, options),
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
