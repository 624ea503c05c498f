// Debian packages the stack needs: checked with dpkg-query, installed with apt-get only when
// missing (a second run only looks).
import { baseEnv, run, runChecked } from '../subprocess.js';

export const basePackages = ['borgbackup', 'openssh-server', 'rsync'];
// Browser tests drive Debian's chromium through playwright-core; borg fixtures use zstd and the
// Python cryptography module to build and check vectors; the database-dump tests run sqlite3 (the
// PostgreSQL and MariaDB clients come with the machine's own servers).
export const testPackages = ['chromium', 'zstd', 'python3-cryptography', 'sqlite3'];

export async function missingPackages(names: string[]): Promise<string[]> {
  // dpkg-query exits 1 when a name is unknown but still prints the ones it knows.
  const r = await run('dpkg-query', ['-W', '-f', '${Package} ${db:Status-Abbrev}\n', ...names]);
  const installed = new Set(
    r.stdout
      .toString()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([, status]) => status?.startsWith('ii'))
      .map(([name]) => name),
  );
  return names.filter((n) => !installed.has(n));
}

export async function aptInstall(names: string[], print: (line: string) => void): Promise<void> {
  const env = baseEnv({ DEBIAN_FRONTEND: 'noninteractive' });
  const install = () => run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...names], { env, timeoutMs: 30 * 60_000, maxOutput: 1024 * 1024 });
  print(`  ${''.padEnd(12)} apt-get install ${names.join(' ')}…`);
  let r = await install();
  if (r.code !== 0) {
    // A fresh machine has no package lists yet (or stale ones): refresh once and retry.
    print(`  ${''.padEnd(12)} apt-get install failed; running apt-get update once and retrying`);
    await runChecked('apt-get', ['update', '-q'], { env, timeoutMs: 10 * 60_000 });
    r = await install();
  }
  if (r.code !== 0) {
    const tail = r.stderr.toString().trim().split('\n').slice(-10).join('\n');
    throw new Error(`apt-get install ${names.join(' ')} failed (exit ${r.code}):\n${tail}`);
  }
}

export async function ensurePackages(names: string[], print: (line: string) => void): Promise<string> {
  const missing = await missingPackages(names);
  if (!missing.length) return `${names.join(', ')} installed`;
  await aptInstall(missing, print);
  const still = await missingPackages(missing);
  if (still.length) throw new Error(`apt-get did not install ${still.join(', ')}`);
  return `installed ${missing.join(', ')}`;
}
