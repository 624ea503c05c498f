// `npm test` (and CI): provision like `npm start` plus the test packages, make sure a Temporal
// server is there for the tests, then lint → typecheck → unit → integration → e2e. Lint or
// typecheck failing stops the run; the test levels all run, so that one CI run shows every failing
// test, and the exit code is the first failure's.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { freePort } from './net.js';
import { formatMs, provision } from './provision.js';
import { ensureNamespaceAndSearchAttributes, launchDevServer, temporalAnswers, type RunningDevServer } from './temporal-server.js';

export interface TestOptions {
  projectDir: string;
  print: (line: string) => void;
}

const vitestProjects = ['unit', 'integration', 'integration-solo', 'e2e'] as const;

function steps(reportDir: string): Array<{ name: string; file: string; args: string[]; report?: string }> {
  return [
    { name: 'lint', file: 'npm', args: ['run', '--silent', 'lint'] },
    { name: 'typecheck', file: 'npm', args: ['run', '--silent', 'typecheck'] },
    ...vitestProjects.map((p) => {
      const report = join(reportDir, `${p}.json`);
      // A project without test files yet must not fail the run; the JSON report feeds the
      // closing count line.
      return { name: p, file: 'npx', args: ['vitest', 'run', '--project', p, '--passWithNoTests', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`], report };
    }),
  ];
}

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

interface FileTime {
  file: string;
  ms: number;
}

function readCounts(report: string | undefined, into: Counts, times: FileTime[]): void {
  if (!report) return;
  try {
    const r = JSON.parse(readFileSync(report, 'utf8')) as {
      numPassedTests?: number;
      numFailedTests?: number;
      numPendingTests?: number;
      numTodoTests?: number;
      testResults?: Array<{ name?: string; startTime?: number; endTime?: number; status?: string; assertionResults?: Array<{ status?: string }> }>;
    };
    for (const f of r.testResults ?? []) {
      if (f.name && f.startTime && f.endTime) times.push({ file: f.name.replace(/^.*?\/test\//, 'test/'), ms: f.endTime - f.startTime });
    }
    // A file that fails to load has no failed test; count it, or a failed run would say "0 failed".
    const brokenFiles = (r.testResults ?? []).filter((f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')).length;
    into.passed += r.numPassedTests ?? 0;
    into.failed += (r.numFailedTests ?? 0) + brokenFiles;
    into.skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  } catch {
    /* the step died before writing its report */
  }
}

export async function runTests(config: Config, opts: TestOptions): Promise<number> {
  const { print } = opts;
  const t0 = Date.now();
  let interrupted: NodeJS.Signals | undefined;
  let current: ReturnType<typeof spawn> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!interrupted) print(`\n${sig}: stopping the tests…`);
    interrupted = sig;
    // A terminal's Ctrl-C reached the step already (same process group); a SIGTERM sent to us
    // alone (CI's timeout) must be passed on.
    if (sig !== 'SIGINT') current?.kill(sig);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);

  let temporal: RunningDevServer | undefined;
  const results: string[] = [];
  const counts: Counts = { passed: 0, failed: 0, skipped: 0 };
  const times: FileTime[] = [];
  const reportDir = mkdtempSync(join(tmpdir(), 'borgcube-reports-'));
  let code = 0;
  try {
    print(`Provisioning for tests (data dir ${config.dataDir})`);
    const prov = await provision(config, { mode: 'test', projectDir: opts.projectDir, print });
    print(`Provisioned in ${formatMs(prov.ms)}.`);
    if (interrupted) return 130;

    const t = await temporalForTests(config, prov.temporalCli!.path, print);
    temporal = t.server;
    const { address, namespace } = t;
    if (interrupted) return 130;

    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: namespace,
      TEMPORAL_CLI_PATH: prov.temporalCli!.path,
      DATABASE_URL: config.databaseUrl,
      REDIS_URL: config.redisUrl,
    };
    for (const s of steps(reportDir)) {
      // Lint and typecheck failures stop the run; a failed test level does not stop the next.
      if (code !== 0 && !s.report) break;
      const ts = Date.now();
      print(`\n▶ ${s.name}: ${[s.file, ...s.args].join(' ')}`);
      const stepCode = await new Promise<number>((resolve) => {
        const child = spawn(s.file, s.args, { cwd: opts.projectDir, env, stdio: ['ignore', 'inherit', 'inherit'] });
        current = child;
        child.on('error', (err) => {
          print(`${s.file}: ${err.message}`);
          resolve(127);
        });
        child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 + (signalNumbers[sig] ?? 1) : 1)));
      });
      current = undefined;
      readCounts(s.report, counts, times);
      results.push(`  ${stepCode === 0 ? '✓' : '✗'} ${s.name.padEnd(17)} ${formatMs(Date.now() - ts)}`);
      if (interrupted) {
        code = 130;
        break;
      }
      if (code === 0) code = stepCode;
      if (code !== 0 && !s.report) break;
    }
  } catch (err) {
    print(`\nnpm test failed before the tests ran: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  } finally {
    await temporal?.stop();
    rmSync(reportDir, { recursive: true, force: true });
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
  }
  print('');
  printSlowest(times, print);
  for (const r of results) print(r);
  if (counts.passed + counts.failed + counts.skipped > 0) print(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  print(`${code === 0 ? 'All checks passed' : interrupted ? 'Interrupted' : `Failed (exit ${code})`} — total ${formatMs(Date.now() - t0)}.`);
  return interrupted ? 130 : code;
}

/**
 * Tests get their own in-memory server unless TEMPORAL_ADDRESS is set explicitly: a running
 * `npm start` has a worker polling the same task queues on the default address, which would
 * steal the tests' workflow tasks.
 */
async function temporalForTests(config: Config, cliPath: string, print: (line: string) => void): Promise<{ address: string; namespace: string; server?: RunningDevServer }> {
  const address = process.env.TEMPORAL_ADDRESS ? config.temporal.address : undefined;
  if (address && (await temporalAnswers(address))) {
    const added = await ensureNamespaceAndSearchAttributes(address, config.temporal.namespace);
    print(`temporal: reusing ${address} (TEMPORAL_ADDRESS)${added.length ? `, registered ${added.join(', ')}` : ''}`);
    return { address, namespace: config.temporal.namespace };
  }
  if (address) print(`temporal: nothing answers at TEMPORAL_ADDRESS=${address}; starting a server for the tests`);
  const t = Date.now();
  mkdirSync(config.paths.logDir, { recursive: true, mode: 0o700 });
  const own = `127.0.0.1:${await freePort()}`;
  const server = await launchDevServer(cliPath, { address: own, namespace: 'default', headless: true, logFile: join(config.paths.logDir, 'temporal-test.log') });
  print(`temporal: started an in-memory dev server for the tests on ${own} (${formatMs(Date.now() - t)})`);
  return { address: own, namespace: 'default', server };
}

/** The files that cost the most, so that a suite growing past the time budget shows where. */
function printSlowest(times: FileTime[], print: (line: string) => void): void {
  if (!times.length) return;
  print('slowest test files:');
  for (const t of times.sort((a, b) => b.ms - a.ms).slice(0, 15)) print(`  ${formatMs(t.ms).padStart(8)}  ${t.file}`);
  print('');
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
