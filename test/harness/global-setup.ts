// Global setup of the integration and e2e projects (vitest.config.ts): removes leftovers of
// crashed runs, makes sure a Temporal server answers, and provides its address to the tests
// (`inject('temporalAddress')`, or testTemporal() from ./temporal.ts).
//
// TEMPORAL_ADDRESS set in the environment (npm test sets it) and answering → that server is used.
// Otherwise an in-memory dev server is started on a free port for this run and stopped at the
// end: the default address may be a running `npm start`, whose worker would take the tests' tasks.
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../infra/config.js';
import { ensureNamespaceAndSearchAttributes, temporalAnswers } from '../../infra/local-stack/temporal-server.js';
import { sweepLeftovers } from './leftovers.js';
import { startOwnTemporal } from './temporal-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** host:port of the Temporal frontend the tests use. */
    temporalAddress: string;
    temporalNamespace: string;
  }
}

const log = (line: string) => process.stderr.write(`[global-setup] ${line}\n`);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const config = loadConfig();
  const swept = await sweepLeftovers({ databaseUrl: config.databaseUrl });
  if (swept.length) log(`removed leftovers of earlier runs: ${swept.join(', ')}`);

  let stopServer: (() => Promise<void>) | undefined;
  let address = process.env.TEMPORAL_ADDRESS ? config.temporal.address : undefined;
  let namespace = config.temporal.namespace;
  if (address && (await temporalAnswers(address))) {
    await ensureNamespaceAndSearchAttributes(address, namespace);
  } else {
    const started = Date.now();
    const own = await startOwnTemporal({ build: true, print: log });
    ({ address, namespace } = own);
    log(`started an in-memory Temporal dev server on ${address} in ${Date.now() - started} ms`);
    stopServer = () => own.stop();
  }
  project.provide('temporalAddress', address);
  project.provide('temporalNamespace', namespace);

  return async () => {
    await stopServer?.();
    // The test processes have ended: whatever they did not clean up is a leftover now.
    const late = await sweepLeftovers({ databaseUrl: config.databaseUrl });
    if (late.length) log(`removed what the tests left behind: ${late.join(', ')}`);
  };
}
