// The JSON API's contract, taken from the routes themselves: every API route starts with an
// `op({...})` middleware that (1) enforces the operation's role and (2) carries its
// documentation — summary and the zod schemas its handler validates with. `/api/v1/openapi.json`
// walks the app's route table, so a route without `op()` is undocumented AND unauthorized
// (the integration test checks that every /api/v1 route has one), and the document cannot drift
// from the validation: both use the same schema objects (zod 4's toJSONSchema).
import type { Hono, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { hasRole } from '../../services/auth.js';
import { forbidden } from '../../services/errors.js';
import type { Role } from '../../services/users.js';
import { principalOf } from '../auth.js';
import type { WebEnv } from '../env.js';

export interface OperationDoc {
  summary: string;
  tag: string;
  /** Who may call it: a role (or higher), or `public`. */
  role: Role | 'public';
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Success status (default 200). */
  status?: number;
  response?: z.ZodType;
  description?: string;
}

const docs = new WeakMap<object, OperationDoc>();

/** Role check + documentation of one API operation. */
export function op(doc: OperationDoc): MiddlewareHandler<WebEnv> {
  const mw: MiddlewareHandler<WebEnv> = async (c, next) => {
    if (doc.role !== 'public') {
      const p = principalOf(c);
      if (!hasRole(p.user.role, doc.role)) throw forbidden(`this needs the ${doc.role} role; you are ${p.user.role}`);
    }
    await next();
  };
  docs.set(mw, doc);
  return mw;
}

export function operationOf(handler: unknown): OperationDoc | undefined {
  return typeof handler === 'function' ? docs.get(handler) : undefined;
}

const errorSchema = z.object({
  error: z.object({ kind: z.string(), message: z.string(), issues: z.array(z.object({ path: z.string(), message: z.string() })).optional() }),
});

function schema(t: z.ZodType): unknown {
  return z.toJSONSchema(t, { io: 'input', unrepresentable: 'any', target: 'openapi-3.0' });
}

/** Builds the OpenAPI 3.0 document of every documented route under `prefix`. */
export function openApiDocument(app: Hono<WebEnv>, prefix: string, info: { title: string; version: string; serverUrl: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of app.routes) {
    const d = operationOf(r.handler);
    if (!d || !r.path.startsWith(prefix)) continue;
    const path = r.path.slice(prefix.length).replace(/:([A-Za-z0-9_]+)/g, '{$1}') || '/';
    const parameters: unknown[] = [];
    for (const [where, obj] of [['path', d.params], ['query', d.query]] as const) {
      if (!obj) continue;
      const shape: Record<string, z.ZodType> = obj.shape;
      for (const [name, t] of Object.entries(shape)) {
        parameters.push({ name, in: where, required: where === 'path' || !t.safeParse(undefined).success, schema: schema(t), ...(t.description ? { description: t.description } : {}) });
      }
    }
    const status = String(d.status ?? 200);
    const operation: Record<string, unknown> = {
      summary: d.summary,
      tags: [d.tag],
      operationId: `${r.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/(^|[/_-])([a-z0-9])/g, (_m, _s: string, ch: string) => ch.toUpperCase())}`,
      ...(d.description ? { description: d.description } : {}),
      'x-required-role': d.role,
      security: d.role === 'public' ? [] : [{ bearer: [] }, { session: [] }],
      ...(parameters.length ? { parameters } : {}),
      ...(d.body ? { requestBody: { required: true, content: { 'application/json': { schema: schema(d.body) } } } } : {}),
      responses: {
        [status]: d.response ? { description: 'OK', content: { 'application/json': { schema: schema(d.response) } } } : { description: status === '204' ? 'No content' : 'OK' },
        ...(d.role === 'public' ? {} : { '401': errorRef('not logged in'), '403': errorRef(`needs the ${d.role} role (or a CSRF token with a session cookie)`) }),
        ...(d.body || d.query || d.params ? { '400': errorRef('invalid input; `issues` says which field') } : {}),
        default: errorRef('error (404 not found, 409 conflict, 429 rate limited, 502 the host failed, 503 unavailable)'),
      },
    };
    (paths[path] ??= {})[r.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.0.3',
    info: { title: info.title, version: info.version, description: 'BorgCube JSON API. Authenticate with `Authorization: Bearer <API token>` (create one on your account page), or with the console session cookie plus the `X-CSRF-Token` header on state-changing requests.' },
    servers: [{ url: info.serverUrl }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API token (bct_…)' },
        session: { type: 'apiKey', in: 'cookie', name: 'borgcube_session' },
      },
      schemas: { Error: schema(errorSchema) },
    },
    paths,
  };
}

function errorRef(description: string) {
  return { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
}
