// The client machine of a bench run: a bench user reached through the loopback client sshd, which
// authorizes BorgCube's server key (pushes, runs) and holds the trees; plus a second user as the
// repository host of the direct-Borg baseline.
import { rmSync } from 'node:fs';
import { onCleanup } from './cleanup.js';
import { setupDirect, type DirectBorg } from './direct.js';
import { startPlainSshd, type Sshd } from './sshd.js';
import { makeTaggedDir } from './tags.js';
import { createBenchUser, type BenchUser } from './users.js';

export interface ClientSide {
  sshd: Sshd;
  client: BenchUser;
  repoHost: BenchUser;
  direct: DirectBorg;
}

export async function setupClientSide(serverPublicKey: string): Promise<ClientSide> {
  const dir = makeTaggedDir('client-sshd');
  onCleanup(`folder ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const sshd = await startPlainSshd(dir, dir);
  const client = await createBenchUser();
  const repoHost = await createBenchUser();
  client.authorize(serverPublicKey);
  return { sshd, client, repoHost, direct: setupDirect(client, repoHost, sshd) };
}

/** Classifies the processes below the client sshd (direct baseline): borg serve, else sshd. */
export const directServerClass = (cmd: string) => (cmd.includes('borg serve') ? 'borg serve' : undefined);
/** Below BorgCube's sshd: the proxy, the AuthorizedKeysCommand, else sshd itself. */
export const borgcubeServerClass = (cmd: string) => (cmd.includes('proxy/session/main.js') ? 'proxy' : cmd.includes('authorized-keys.js') ? 'authorized-keys' : undefined);
