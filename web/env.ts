// What every handler of the web app can rely on: its dependencies (built once by web/main.ts or
// a test) and, per request, the principal the auth middleware found.
import type { IncomingMessage } from 'node:http';
import type { LoginLimiter, Principal } from '../services/auth.js';
import type { DashboardOptions } from '../services/dashboard.js';
import type { ServiceDeps } from '../services/deps.js';
import type { JobEventHub } from '../infra/job-event-hub.js';

export interface HealthReport {
  ok: boolean;
  database: { ok: boolean; error?: string };
  redis: { ok: boolean; error?: string };
  temporal: { ok: boolean; error?: string };
  /** Task queue → whether at least one worker polls it. */
  workers: Record<string, boolean>;
}

/** The anonymous /healthz: `down` without the database (503), `degraded` when anything else is. */
export interface HealthSummary {
  status: 'ok' | 'degraded' | 'down';
  database: 'ok' | 'degraded';
  redis: 'ok' | 'degraded';
  temporal: 'ok' | 'degraded';
  workers: 'ok' | 'degraded';
}

/** The web app's dependencies (STYLE.md §16: built in the composition root, passed down). */
export interface WebDeps {
  services: ServiceDeps;
  limiter: LoginLimiter;
  hub: JobEventHub;
  health: () => Promise<HealthReport>;
  /** The dashboard's per-client summaries, cached (web/main.ts); read on every view when not given. */
  dashboardFleet?: DashboardOptions['fleet'];
  /** WebSocket tuning (tests and the benchmark shrink them). */
  ws?: { maxBufferedBytes?: number; idlePollMs?: number };
}

export interface WebEnv {
  /** Set by @hono/node-server; absent under app.request() in tests. */
  Bindings: { incoming?: IncomingMessage };
  Variables: {
    principal: Principal | undefined;
  };
}
