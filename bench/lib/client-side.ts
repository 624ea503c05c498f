// The client machine of a bench run: a bench user reached through the harness's client sshd,
// which authorizes BorgCube's server key (pushes, runs) and holds the trees; plus a second user
// as the repository host of the direct-Borg baseline.
import { startClientSshd, type ClientSshd } from '../../test/harness/sshd.js';
import { setupDirect, type DirectBorg } from './direct.js';
import { createBenchUser, type BenchUser } from './users.js';

export interface ClientSide {
  sshd: ClientSshd;
  client: BenchUser;
  repoHost: BenchUser;
  direct: DirectBorg;
}

export async function setupClientSide(serverPublicKey: string): Promise<ClientSide> {
  // INFO, not the tests' VERBOSE: the log is not read, and its writes are not what is measured.
  const sshd = await startClientSshd({ logLevel: 'INFO' });
  const client = await createBenchUser();
  const repoHost = await createBenchUser();
  client.authorize(serverPublicKey);
  return { sshd, client, repoHost, direct: setupDirect(client, repoHost, sshd) };
}

/** Classifies the processes below the client sshd (direct baseline): borg serve, else sshd. */
export const directServerClass = (cmd: string) => (cmd.includes('borg serve') ? 'borg serve' : undefined);
/** Below BorgCube's sshd: the proxy, the AuthorizedKeysCommand, else sshd itself. */
export const borgcubeServerClass = (cmd: string) => (cmd.includes('authorized-keys.js') ? 'authorized-keys' : cmd.includes('session/main.js') ? 'proxy' : undefined);

/** The listener's pid of an sshd the bench samples. */
export function listenerPid(sshd: { pid: number | undefined }): number {
  if (sshd.pid === undefined) throw new Error('the sshd is not running');
  return sshd.pid;
}
