// Secrets at rest: AES-256-GCM under the server master key (32 random bytes in
// <data dir>/master.key, mode 0600). Each sealed value is bound to what it belongs to through the
// GCM associated data (e.g. "repository:<uuid>:passphrase"), so a sealed value copied into another
// row does not open.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';

const PREFIX = 'bc1:';

export class MasterKey {
  private constructor(private readonly key: Buffer) {}

  static fromBytes(key: Buffer): MasterKey {
    if (key.length !== 32) throw new Error('master key must be 32 bytes');
    return new MasterKey(Buffer.from(key));
  }

  /** Loads the key; refuses a file that other accounts could read. */
  static load(path: string): MasterKey {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) throw new Error(`${path} must not be readable by group or others (chmod 600 ${path})`);
    return MasterKey.fromBytes(readFileSync(path));
  }

  /** Creates the key file if it does not exist (O_EXCL, 0600); returns whether it was created. */
  static ensure(path: string, owner?: { uid: number; gid: number }): boolean {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    try {
      writeSync(fd, randomBytes(32));
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o600);
    if (owner) chownSync(path, owner.uid, owner.gid);
    return true;
  }

  seal(plaintext: string | Buffer, context: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([c.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext), c.final()]);
    return PREFIX + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
  }

  open(sealed: string, context: string): Buffer {
    if (!sealed.startsWith(PREFIX)) throw new Error('not a sealed secret');
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64');
    if (raw.length < 28) throw new Error('sealed secret too short');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(context, 'utf8'));
    d.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
    } catch {
      throw new Error(`sealed secret for ${context} does not open with this master key`);
    }
  }

  openText(sealed: string, context: string): string {
    return this.open(sealed, context).toString('utf8');
  }
}
