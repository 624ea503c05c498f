// What an attacker on the client would do: copy a running job's SSH credential from its job
// folder, to try it once the job is over (it must open nothing then).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientHost } from './client-host.js';

/**
 * Keeps a copy of the job's key once it is whole: the push writes the file in pieces, and a copy
 * taken midway is no key at all (ssh then says "error in libcrypto", not that it was refused).
 */
export function stealCredential(host: ClientHost, jobId: string, intoDir: string): { path: string; stop: () => void } {
  const dest = join(intoDir, `stolen-${jobId}`);
  const src = host.path('.borgcube', 'jobs', jobId, 'id');
  const timer = setInterval(() => {
    if (existsSync(dest)) return;
    try {
      const key = readFileSync(src, 'utf8');
      if (key.includes('-----END OPENSSH PRIVATE KEY-----')) writeFileSync(dest, key, { mode: 0o600 });
    } catch {
      /* not there yet, or gone */
    }
  }, 50);
  return { path: dest, stop: () => clearInterval(timer) };
}
