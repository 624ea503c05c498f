// Console users. Passwords are hashed with scrypt; the hash never leaves db/queries/users.ts
// except for verification at login.
import { z } from 'zod';
import * as authQ from '../db/queries/auth.js';
import * as users from '../db/queries/users.js';
import { generatePassword, hashPassword } from '../infra/passwords.js';
import type { ServiceDeps } from './deps.js';
import { conflict, invalid, notFound, uniqueViolation } from './errors.js';

export const roles = ['admin', 'operator', 'viewer'] as const;
export type Role = (typeof roles)[number];

export const usernameSchema = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'use 1-64 letters, digits, dots, dashes, underscores or @');
export const passwordSchema = z.string().min(12, 'must be at least 12 characters').max(1024);

export const addUserInput = z.object({
  username: usernameSchema,
  role: z.enum(roles).default('viewer'),
  password: passwordSchema.optional(),
});
export type AddUserInput = z.input<typeof addUserInput>;

/** Creates a user; without a password, one is generated and returned (shown once). */
export async function addUser(deps: Pick<ServiceDeps, 'db' | 'log'>, raw: AddUserInput): Promise<{ user: users.UserRow; generatedPassword?: string }> {
  const input = addUserInput.parse(raw);
  if (await users.findUserByName(deps.db, input.username)) throw conflict(`user ${JSON.stringify(input.username)} already exists`);
  const generated = input.password ? undefined : generatePassword();
  try {
    const user = await users.insertUser(deps.db, { username: input.username, role: input.role, passwordHash: await hashPassword(input.password ?? generated!) });
    deps.log.info({ user: user.username, role: user.role }, 'user added');
    return { user, generatedPassword: generated };
  } catch (err) {
    if (uniqueViolation(err)) throw conflict(`user ${JSON.stringify(input.username)} already exists`);
    throw err;
  }
}

export async function listUsers(deps: Pick<ServiceDeps, 'db'>) {
  return users.listUsers(deps.db);
}

export async function getUser(deps: Pick<ServiceDeps, 'db'>, username: string) {
  const u = await users.findUserByName(deps.db, username);
  if (!u) throw notFound('user', username);
  return u;
}

export const updateUserInput = z.object({ role: z.enum(roles), password: passwordSchema, disabled: z.boolean() }).partial();

export async function updateUser(deps: Pick<ServiceDeps, 'db' | 'log'>, username: string, raw: z.input<typeof updateUserInput>, actorId?: string) {
  const input = updateUserInput.parse(raw);
  const u = await getUser(deps, username);
  if (actorId === u.id && (input.role && input.role !== 'admin' || input.disabled)) throw invalid('you cannot demote or disable your own account');
  const patch: Parameters<typeof users.updateUser>[2] = {};
  if (input.role) patch.role = input.role;
  if (input.disabled !== undefined) patch.disabled = input.disabled;
  if (input.password) patch.passwordHash = await hashPassword(input.password);
  // A new password or a disabled account ends every session and API token of the user, in the
  // same transaction: a stolen cookie or token must not outlive the reset that answers its theft.
  const revoke = Boolean(input.password) || input.disabled === true;
  const row = await deps.db.transaction(async (tx) => {
    const r = (await users.updateUser(tx, u.id, patch))!;
    if (revoke) await authQ.revokeUserAccess(tx, u.id, new Date());
    return r;
  });
  deps.log.info({ user: username, role: row.role, disabled: row.disabled, passwordChanged: Boolean(input.password), accessRevoked: revoke }, 'user updated');
  return row;
}

export async function removeUser(deps: Pick<ServiceDeps, 'db' | 'log'>, username: string, actorId?: string) {
  const u = await getUser(deps, username);
  if (actorId === u.id) throw invalid('you cannot remove your own account');
  await users.deleteUser(deps.db, u.id);
  deps.log.info({ user: username }, 'user removed');
}

/**
 * First start: when there is no user at all, create `admin` with BORGCUBE_ADMIN_PASSWORD or a
 * generated one-time password (returned so that the caller prints it once).
 */
export async function ensureInitialAdmin(deps: Pick<ServiceDeps, 'db' | 'log'>, password: string | undefined): Promise<{ username: string; password?: string; created: boolean }> {
  if ((await users.countUsers(deps.db)) > 0) return { username: 'admin', created: false };
  const { generatedPassword } = await addUser(deps, { username: 'admin', role: 'admin', password });
  return { username: 'admin', password: generatedPassword, created: true };
}
