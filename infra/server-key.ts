// The server's own SSH key: the key BorgCube logs into clients with. Created once (ed25519,
// 0600 in a 0700 folder); its public half is what admins put into a client's authorized_keys.
import { existsSync, mkdirSync, readFileSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { runChecked } from './subprocess.js';

export async function ensureServerKey(path: string): Promise<{ created: boolean }> {
  if (existsSync(path)) return { created: false };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `borgcube@${hostname()}`, '-f', path]);
  chmodSync(path, 0o600);
  return { created: true };
}

export function readServerPublicKey(path: string): string {
  const pub = `${path}.pub`;
  if (!existsSync(pub)) throw new Error(`no server key at ${path} yet (npm start creates it)`);
  return readFileSync(pub, 'utf8').trim();
}

export function readServerPrivateKey(path: string): Buffer {
  return readFileSync(path);
}
