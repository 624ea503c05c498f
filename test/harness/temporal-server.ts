// An in-memory Temporal dev server of its own, on a free port, for a test run (global-setup.ts)
// or a benchmark run: a running `npm start` on the default address has a worker that would take
// their tasks. Its folder is tagged (tags.ts), so a crashed run's server is ended by the next.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../infra/config.js';
import { freePort } from '../../infra/local-stack/net.js';
import { launchDevServer, resolveTemporalCli } from '../../infra/local-stack/temporal-server.js';
import { projectRoot } from './paths.js';
import { makeTaggedDir, recordProcess } from './tags.js';

export interface OwnTemporal {
  address: string;
  namespace: string;
  pid: number;
  /** The server's SQLite file, when started with `persist` (its size is Temporal's storage). */
  dbFile?: string;
  /** The server's Prometheus endpoint, when started with `metrics`. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

/**
 * `build`: build the Temporal CLI when it is missing (tests) instead of failing (benchmarks).
 * `persist`: keep the state in a SQLite file in the server's folder instead of memory
 * (bench:fleet measures its growth); it goes with the folder. The file is in WAL mode with
 * synchronous=NORMAL: SQLite's default (a rollback journal, fsync on every commit) made a
 * 1,000-schedule fleet fail its writes with "context deadline exceeded" and fire ~15 of 200
 * schedule actions a minute; a production Temporal runs on a cluster's database, not this file.
 * `namespace`: created at launch besides `default` (with BorgCube's search attributes).
 * `metrics`: serve Prometheus metrics on a free port (bench:fleet reads the schedules' action delay there).
 */
export async function startOwnTemporal(o: { build: boolean; print?: (line: string) => void; persist?: boolean; namespace?: string; metrics?: boolean }): Promise<OwnTemporal> {
  const namespace = o.namespace ?? 'default';
  const cli = await resolveTemporalCli({ configured: loadConfig().temporal.cliPath, projectDir: projectRoot, build: o.build, print: o.print });
  const dir = makeTaggedDir('temporal');
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const dbFile = o.persist ? join(dir, 'temporal.db') : undefined;
  const metricsPort = o.metrics ? await freePort() : undefined;
  const sqlitePragmas = dbFile ? { journal_mode: 'wal', synchronous: 'normal' } : undefined;
  const server = await launchDevServer(cli.path, { address, namespace, headless: true, dbFile, metricsPort, sqlitePragmas, logFile: join(dir, 'temporal.log') });
  recordProcess(dir, server.pid, `--port ${port}`);
  return {
    address,
    namespace,
    pid: server.pid,
    dbFile,
    metricsUrl: metricsPort ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
