// `npm start` / `npm test` before anything is installed: plain JavaScript with no dependencies.
// Checks Node and root, runs `npm ci` when node_modules is missing or older than the lock file,
// builds (tsc → dist/) only when a source changed since the last build, then hands over to
// dist/infra/local-stack/main.js, forwarding signals and its exit code.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const command = process.argv[2];
const say = (line) => process.stdout.write(`${line}\n`);
const fail = (line, code = 1) => {
  process.stderr.write(`${line}\n`);
  process.exit(code);
};

if (command !== 'start' && command !== 'test') fail('usage: node infra/local-stack/bootstrap.mjs start|test', 2);

// @temporalio/worker 1.24 needs Node >= 20.3.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 3)) {
  fail(`BorgCube needs Node.js >= 20.3; this is ${process.version} (${process.execPath}). Install a newer Node.js (e.g. Node 20 LTS or 22) and run npm ${command} again.`);
}

if (process.getuid() !== 0) {
  // The same defaults as infra/config.ts; this file runs before anything is installed.
  const env = (name, def) => process.env[name] || def;
  const packages = command === 'test' ? 'borgbackup, openssh-server, rsync, chromium, zstd and python3-cryptography' : 'borgbackup, openssh-server and rsync';
  fail(
    [
      `npm ${command} must run as root, because it:`,
      `  - installs the Debian packages ${packages} with apt-get when they are missing (and PostgreSQL / Redis when none answers);`,
      `  - creates the service accounts ${env('BORGCUBE_PROXY_USER', 'borgcube')} (the SSH login whose forced command is the BorgCube proxy) and ${env('BORGCUBE_STORAGE_USER', 'borgcube-storage')} (owns the repositories and runs the repository service), and runs the repository service as that account;`,
      `  - runs BorgCube's own sshd on port ${env('BORGCUBE_SSH_PORT', '2222')} (sshd must start as root to switch to the login account);`,
      `  - keeps its state, owned by those accounts, in ${env('BORGCUBE_DATA_DIR', '/var/lib/borgcube')}.`,
      `Run it as root, e.g. \`sudo npm ${command}\`.`,
    ].join('\n'),
  );
}

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

const runInherit = (file, args) => {
  const r = spawnSync(file, args, { cwd: root, stdio: 'inherit' });
  if (r.error) fail(`${file}: ${r.error.message}`);
  return r.status ?? 1;
};

// npm records what it installed in node_modules/.package-lock.json; older than the lock file
// means someone changed the dependencies since.
const lockFile = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || mtime(installed) < mtime(lockFile)) {
  say(existsSync(installed) ? 'package-lock.json changed: npm ci' : 'installing dependencies: npm ci');
  const code = runInherit('npm', ['ci', '--no-audit', '--no-fund']);
  if (code !== 0) fail(`npm ci failed (exit ${code})`, code);
}

// Rebuild only when a compiled source is newer than the last successful build.
const buildDirs = ['infra', 'db', 'proxy', 'activities', 'workflows', 'worker', 'web', 'services', 'cli', 'bench', 'test/harness'];
const newestSource = () => {
  let newest = Math.max(mtime(join(root, 'tsconfig.json')), mtime(join(root, 'tsconfig.build.json')), mtime(lockFile));
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    // A folder's mtime changes when a file in it is added, renamed or deleted.
    newest = Math.max(newest, mtime(dir));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'migrations') walk(p);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, mtime(p));
    }
  };
  for (const d of buildDirs) walk(join(root, d));
  return newest;
};
// The stamp says whether that build was clean ("ok") or only emitted despite type errors.
const stamp = join(root, 'dist', '.build-stamp');
const mainJs = join(root, 'dist', 'infra', 'local-stack', 'main.js');
const stampState = () => {
  try {
    return readFileSync(stamp, 'utf8').split(' ')[0];
  } catch {
    return undefined;
  }
};
const upToDate = existsSync(mainJs) && mtime(stamp) >= newestSource();
if (upToDate && stampState() === 'errors' && command === 'start') {
  say('warning: the last build had type errors and no source changed since (npm run typecheck shows them); starting with what tsc emitted');
} else if (!upToDate || stampState() !== 'ok') {
  const started = Date.now();
  say('building: npm run build (tsc → dist/)');
  // The incremental state lives inside dist/ so that deleting dist/ also forces a full build.
  const code = runInherit('npm', ['run', '--silent', 'build', '--', '--incremental', '--tsBuildInfoFile', join(root, 'dist', '.tsbuildinfo')]);
  writeFileSync(stamp, `${code === 0 ? 'ok' : 'errors'} ${new Date().toISOString()}\n`);
  // Dated to when the build began: a file saved while tsc ran is newer and gets built next time.
  utimesSync(stamp, started / 1000, started / 1000);
  if (code === 0) {
    say(`built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } else if (command === 'start' && existsSync(mainJs)) {
    // tsc still emits JavaScript: a developer in the middle of a change can still run the stack.
    say('warning: the build reported type errors (above); starting with what tsc emitted');
  } else {
    fail(`the build failed (exit ${code}); fix the errors above`, code);
  }
}

const child = spawn(process.execPath, ['--enable-source-maps', mainJs, command], { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  });
}
child.on('error', (err) => fail(`cannot run ${mainJs}: ${err.message}`));
child.on('exit', (code, signal) => {
  const numbers = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  process.exit(code ?? 128 + (numbers[signal] ?? 1));
});
