// WebSockets: /ws/jobs/:id?after=<seq> streams one job live (services/job-stream.ts). The upgrade
// request passes the same authentication as every page (session cookie or bearer token), a
// same-origin check for cookie sessions, and the job must exist; otherwise the upgrade is
// refused with the HTTP status (401, 403, 404) and no socket is opened.
import type { UpgradeWebSocket } from 'hono/ws';
import { Hono } from 'hono';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { getJob } from '../../services/jobs.js';
import { requireRole, sameOriginUpgrade } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { JobStream } from '../../services/job-stream.js';

const afterQuery = z.coerce.number().int().min(0).max(2 ** 31).catch(0);

export function socketRoutes(deps: WebDeps, upgradeWebSocket: UpgradeWebSocket<WebSocket>) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get(
    '/jobs/:id',
    requireRole('viewer'),
    sameOriginUpgrade(s.config.web.publicUrl),
    async (c, next) => {
      await getJob(s, c.req.param('id'));
      await next();
    },
    upgradeWebSocket((c) => {
      const id = c.req.param('id')!;
      const after = afterQuery.parse(c.req.query('after'));
      let stream: JobStream | undefined;
      return {
        onOpen(_e, ws) {
          stream = new JobStream(
            s,
            deps.hub,
            id,
            after,
            { send: (m) => ws.send(JSON.stringify(m)), close: (code, reason) => ws.close(code, reason), bufferedAmount: () => ws.raw?.bufferedAmount ?? 0 },
            { maxBufferedBytes: deps.ws?.maxBufferedBytes, idlePollMs: deps.ws?.idlePollMs },
          );
          void stream.start();
        },
        onMessage(_e, ws) {
          // The stream is one-way; a client that talks is not ours.
          ws.close(1003, 'this socket only sends');
        },
        onClose() {
          stream?.stop();
        },
        onError() {
          stream?.stop();
        },
      };
    }),
  );
  return app;
}
