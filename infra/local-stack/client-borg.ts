// A second client borg for the tests: 1.4.0 from Debian bookworm-backports, unpacked (dpkg -x)
// into .tools/ and run through a wrapper, so that test clients can use it as their borg path while
// the server's own borg (the installed package) stays 1.2.4. Debian 13 and bookworm-backports
// ship 1.4.0; the proxy must work with both generations a fleet runs.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, run } from '../subprocess.js';

export const clientBorg14 = {
  version: '1.4.0',
  /** The exact Debian package version: a newer backport must be a deliberate change. */
  debVersion: '1.4.0-4~bpo12+1',
  suite: 'bookworm-backports',
} as const;

/** The folder the unpacked package and the wrapper live in. */
export function clientBorg14Dir(projectDir: string): string {
  return join(projectDir, '.tools', `borg-${clientBorg14.version}`);
}

/** The wrapper a test client runs as its borg path. */
export function clientBorg14Path(projectDir: string): string {
  return join(clientBorg14Dir(projectDir), 'bin', 'borg');
}

const sourcesFile = '/etc/apt/sources.list.d/borgcube-bookworm-backports.sources';

/** Whether some apt source already names the backports suite (the lead's, the admin's or ours). */
function hasBackportsSource(): boolean {
  const files = ['/etc/apt/sources.list'];
  const d = '/etc/apt/sources.list.d';
  if (existsSync(d)) files.push(...readdirSync(d).map((f) => join(d, f)));
  return files.some((f) => {
    try {
      return /^[^#]*\bbookworm-backports\b/m.test(readFileSync(f, 'utf8'));
    } catch {
      return false;
    }
  });
}

async function checked(file: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(file, args, { env: baseEnv({ DEBIAN_FRONTEND: 'noninteractive' }), timeoutMs: opts.timeoutMs ?? 10 * 60_000, cwd: opts.cwd, maxOutput: 1024 * 1024 });
  if (r.code !== 0) {
    const tail = r.stderr.toString().trim().split('\n').slice(-3).join(' / ');
    throw new Error(`${file} ${args.join(' ')} failed (exit ${r.code})${tail ? `: ${tail}` : ''}`);
  }
  return r.stdout.toString();
}

/**
 * Fetches and unpacks borg 1.4.0 unless the wrapper already answers `borg 1.4.0`. Never throws:
 * a machine without the backports mirror still runs every other test, and the 1.4 tests skip
 * with the reason written here.
 */
export async function ensureClientBorg14(projectDir: string, print: (line: string) => void): Promise<string> {
  const r = await provideClientBorg14(projectDir, print);
  return r.path ? r.message : `borg ${clientBorg14.version} for test clients is not available (${r.message}); its tests will skip`;
}

/** The wrapper's path when borg 1.4.0 is there (fetched now or before), else why not. */
export async function provideClientBorg14(projectDir: string, print: (line: string) => void = () => {}): Promise<{ path?: string; message: string }> {
  const dir = clientBorg14Dir(projectDir);
  const wrapper = clientBorg14Path(projectDir);
  const unavailable = `${dir}.unavailable`;
  const answers = async () => (await run(wrapper, ['--version'], { env: baseEnv(), timeoutMs: 60_000 })).stdout.toString().trim();
  if (existsSync(wrapper) && (await answers()) === `borg ${clientBorg14.version}`) return { path: wrapper, message: `${wrapper} (borg ${clientBorg14.version}, cached)` };
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    if (!/^VERSION_CODENAME=bookworm$/m.test(release)) throw new Error(`this is not Debian bookworm; ${clientBorg14.suite} does not apply`);
    if (!hasBackportsSource()) {
      writeFileSync(sourcesFile, `Types: deb\nURIs: http://deb.debian.org/debian\nSuites: ${clientBorg14.suite}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`);
      print(`  ${''.padEnd(12)} added ${sourcesFile}; apt-get update…`);
      await checked('apt-get', ['update', '-q']);
    }
    const work = `${dir}.download`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    // Only borgbackup itself: its Depends (python3-msgpack ≥ 1.0.3, python3-packaging) are met by
    // bookworm's own packages, which a client borg 1.2 already has.
    let download = await run('apt-get', ['download', `borgbackup=${clientBorg14.debVersion}`], { cwd: work, env: baseEnv(), timeoutMs: 10 * 60_000 });
    if (download.code !== 0) {
      // Package lists older than the backport: refresh once.
      await checked('apt-get', ['update', '-q']);
      download = await run('apt-get', ['download', `borgbackup=${clientBorg14.debVersion}`], { cwd: work, env: baseEnv(), timeoutMs: 10 * 60_000 });
    }
    if (download.code !== 0) throw new Error(`apt-get download borgbackup=${clientBorg14.debVersion} failed: ${download.stderr.toString().trim().split('\n').pop() ?? ''}`);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download left no .deb');
    rmSync(dir, { recursive: true, force: true });
    await checked('dpkg', ['-x', join(work, deb), dir]);
    rmSync(work, { recursive: true, force: true });
    const root = realpathSync(dir);
    mkdirSync(join(dir, 'bin'), { recursive: true });
    // Debian's /usr/bin/python3 (the one the package is built for, not a pyenv shim); PYTHONPATH
    // puts the unpacked modules before the installed borg 1.2's.
    writeFileSync(
      wrapper,
      `#!/bin/sh\n# borg ${clientBorg14.debVersion} unpacked from ${clientBorg14.suite} by BorgCube's test provisioning; the installed borg is untouched.\nPYTHONPATH=${root}/usr/lib/python3/dist-packages exec /usr/bin/python3 ${root}/usr/bin/borg "$@"\n`,
      { mode: 0o755 },
    );
    const v = await answers();
    if (v !== `borg ${clientBorg14.version}`) throw new Error(`the unpacked borg answers ${JSON.stringify(v)}, not borg ${clientBorg14.version}`);
    rmSync(unavailable, { force: true });
    return { path: wrapper, message: `${wrapper} (borg ${clientBorg14.version} unpacked from ${deb})` };
  } catch (err) {
    const why = (err as Error).message;
    mkdirSync(join(projectDir, '.tools'), { recursive: true });
    writeFileSync(unavailable, `${why}\n`);
    return { message: why };
  }
}
