// /api/v1/storage-hosts
import { Hono } from 'hono';
import { listStorageHosts } from '../../services/storage-hosts.js';
import type { WebDeps, WebEnv } from '../env.js';
import { op } from './openapi.js';

const tag = 'storage-hosts';

export function storageHostsApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag, summary: 'List the storage hosts that registered, where clients reach their sshd, and whether they report in (status up/down)', role: 'viewer' }), async (c) =>
    c.json({ storageHosts: await listStorageHosts(s) }),
  );
  return app;
}
