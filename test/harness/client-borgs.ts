// The borg versions test clients run (issue 24 point 3): Debian 12's installed 1.2.4 and
// bookworm-backports' 1.4.0, unpacked into .tools/ by provisioning (infra/local-stack/client-borg.ts)
// so that the server's borg stays 1.2.4. Suites parameterized over these run every case per version.
import { provideClientBorg14 } from '../../infra/local-stack/client-borg.js';
import { projectRoot } from './paths.js';

export interface ClientBorg {
  /** What `borg --version` answers, without the "borg ". */
  version: string;
  /** The client's borg path (clients.borg_path). */
  path: string;
}

export const clientBorg12: ClientBorg = { version: '1.2.4', path: 'borg' };

/**
 * borg 1.4.0 for test clients: provisioned now if `npm test` has not done it yet (cached
 * afterwards). `skip` says why when it cannot be had on this machine.
 */
export async function clientBorg14(): Promise<{ borg?: ClientBorg; skip?: string }> {
  const r = await provideClientBorg14(projectRoot);
  return r.path ? { borg: { version: '1.4.0', path: r.path } } : { skip: `borg 1.4.0 could not be provisioned: ${r.message}` };
}
