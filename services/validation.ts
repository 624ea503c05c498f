// Input rules shared by the CLI, the JSON API and the web forms (zod; STYLE.md §9).
import { posix } from 'node:path';
import { z } from 'zod';

export const nameSchema = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'use 1-63 letters, digits, dots, dashes or underscores, starting with a letter or digit');

export const absolutePathSchema = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .refine((p) => !p.includes('\0') && !/[\n\r]/.test(p), 'must not contain NUL or newlines')
  .refine((p) => p === '/' || posix.normalize(p).replace(/\/+$/, '') === p.replace(/\/+$/, ''), 'must be a normalized path (no "." or ".." parts)')
  .transform((p) => (p === '/' ? p : p.replace(/\/+$/, '')));

export const hostSchema = z
  .string()
  .trim()
  .regex(/^(?!-)[A-Za-z0-9.\-:[\]]{1,253}$/, 'must be a host name or IP address');

export const portSchema = z.coerce.number().int().min(1).max(65535);

export const unixUserSchema = z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, 'must be a valid Unix user name');

/** Turns a zod error into one line: "field: problem; field: problem". */
export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}
