// Which borg a job runs on a client: its own when it is a version the proxy speaks with (1.2.x,
// 1.4.x), else the server's deployed into the job folder or a failure, as the client's deploy mode
// (clients.borg_deploy) says. Shared by the job activities and `client test`.
import type { Client } from '../db/schema.js';

/** The borg generations the proxy is tested with (README "Borg versions"; proxy/borg/README.md). */
export function supportedClientBorg(version: string): boolean {
  return /^1\.[24]\.\d+$/.test(version);
}

/** What a job does: run the client's own borg, or deploy the server's (and why, for the job log). */
export type BorgChoice = { use: 'client'; version: string } | { use: 'deploy'; why: string };

/**
 * clients.borg_deploy applied to what `borg --version` found (null: no borg at that path):
 * if-missing deploys only where there is none, if-unsupported also replaces an unsupported one,
 * always deploys, never does not. Pure, so the table is unit-tested.
 */
export function decideClientBorg(mode: Client['borgDeploy'], borgPath: string, probed: string | null): BorgChoice | { fail: string } {
  const supported = probed !== null && supportedClientBorg(probed);
  const found = probed === null ? `no borg at ${borgPath} on the client` : `borg ${probed} at ${borgPath} on the client is not supported (BorgCube works with borg 1.2.x and 1.4.x)`;
  if (mode === 'always') return { use: 'deploy', why: `borg deploy mode is always${probed ? ` (the client has borg ${probed})` : ''}` };
  if (supported) return { use: 'client', version: probed };
  if (mode === 'never') return { fail: `${found}, and its borg deploy mode is never: install borg 1.2 or 1.4 there, or set --borg-path or --borg-deploy` };
  if (probed === null) return { use: 'deploy', why: found };
  if (mode === 'if-unsupported') return { use: 'deploy', why: found };
  return { fail: `${found}: install borg 1.2 or 1.4 there, set --borg-path to one, or --borg-deploy if-unsupported to use the server's` };
}

/** decideClientBorg as one line for `client test` and the console. */
export function describeClientBorgPlan(mode: Client['borgDeploy'], borgPath: string, probed: string | null): string {
  const d = decideClientBorg(mode, borgPath, probed);
  if ('fail' in d) return `jobs fail before anything is pushed: ${d.fail}`;
  return d.use === 'client' ? `jobs run borg ${d.version} at ${borgPath}` : `jobs deploy the server's borg into their job folder (${d.why})`;
}
