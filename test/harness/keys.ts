// SSH key pairs for tests, made in memory (no ssh-keygen round trip).
import { generateEd25519 } from '../../infra/ssh-keygen.js';

export interface TestKeyPair {
  /** OpenSSH private key (PEM-like "-----BEGIN OPENSSH PRIVATE KEY-----"), unencrypted. */
  privateKey: string;
  /** "ssh-ed25519 AAAA… comment", the authorized_keys form. */
  publicKey: string;
}

export function generateTestKey(comment = 'borgcube-test'): TestKeyPair {
  const k = generateEd25519(comment);
  return { privateKey: k.private, publicKey: k.public };
}
