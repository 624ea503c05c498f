// Ed25519 key pairs in OpenSSH's formats, from node's crypto. Not ssh2's generateKeyPairSync: it
// treats the 32-byte public key as a number and drops a leading zero byte (1 key in 128 here),
// and OpenSSH then refuses the private key ("Load key: error in libcrypto"), so a job whose
// credential happened to be such a key failed in every retry.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface SshKeyPair {
  /** "-----BEGIN OPENSSH PRIVATE KEY-----" file contents, unencrypted. */
  private: string;
  /** "ssh-ed25519 AAAA… comment" */
  public: string;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([u32(data.length), data]);
}

export function generateEd25519(comment: string): SshKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  // JWK gives the raw 32-byte seed (d) and public key (x), base64url.
  const jwkPriv = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwkPriv.d!, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  if (seed.length !== 32 || pub.length !== 32) throw new Error('unexpected ed25519 key sizes');

  const pubBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4).readUInt32BE(0);
  let priv = Buffer.concat([u32(check), u32(check), sshString('ssh-ed25519'), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  // Padded with 1, 2, 3, … to the cipher block size (8 for "none").
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const blob = Buffer.concat([Buffer.from('openssh-key-v1\0', 'latin1'), sshString('none'), sshString('none'), sshString(''), u32(1), sshString(pubBlob), sshString(priv)]);
  const b64 = blob.toString('base64').replace(/.{1,70}/g, '$&\n');
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`,
    public: `ssh-ed25519 ${pubBlob.toString('base64')} ${comment}`,
  };
}
