// The product's programs in a checkout, and how the local stack runs them: the one place that
// names their built files, so that the stack drives BorgCube through its entry points as a
// deployment would (processes and `borgcube` commands), never through its modules.
import { join } from 'node:path';
import { run } from '../subprocess.js';

export interface Programs {
  /** The admin CLI (`borgcube`), a node script. */
  cli: string;
  /** The repository service's launcher: node with the service's heap settings (a shell script). */
  storage: string;
  /** The repository service's entry, which the launcher runs. */
  storageMain: string;
  worker: string;
  web: string;
  /** The forced command sshd runs for each proxy connection. */
  proxySession: string;
  /** What the forced command runs inside: no network, no other process, only the storage socket (a shell script). */
  sandbox: string;
  /** sshd's AuthorizedKeysCommand. */
  authorizedKeys: string;
}

export function programs(projectDir: string): Programs {
  const dist = (rel: string) => join(projectDir, 'dist', rel);
  return {
    cli: join(projectDir, 'bin', 'borgcube'),
    storage: join(projectDir, 'bin', 'borgcube-storage'),
    storageMain: dist('worker/storage-main.js'),
    worker: dist('worker/main.js'),
    web: dist('web/main.js'),
    proxySession: dist('proxy/session/main.js'),
    sandbox: join(projectDir, 'bin', 'borgcube-sandbox'),
    authorizedKeys: dist('proxy/session/authorized-keys.js'),
  };
}

/** Where the compiled AuthorizedKeysCommand script lives in a checkout. */
export function authorizedKeysScriptPath(projectDir: string): string {
  return programs(projectDir).authorizedKeys;
}

/**
 * Runs `borgcube ARGS… --json` with `env` (secrets go there or to stdin, never into argv) and
 * returns its parsed output; a failure carries the CLI's own one-line message.
 */
export async function runBorgcubeJson<T>(projectDir: string, args: string[], env: Record<string, string | undefined>): Promise<T> {
  const r = await run(process.execPath, [programs(projectDir).cli, ...args, '--json'], { env, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`borgcube ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.toString().trim()}`);
  return JSON.parse(r.stdout.toString()) as T;
}
