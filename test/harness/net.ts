// Network utilities for tests: the same probes the local stack uses (infra/local-stack/net.ts).
export { freePort, httpStatus, isListening, sshBanner, tcpAnswers, waitFor, WaitTimeoutError } from '../../infra/local-stack/net.js';
