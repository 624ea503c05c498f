// Node options of the repository service process (worker/storage-main.js), shared by every
// launcher (npm start, the test stack, the benchmarks) so that what is measured is what runs.
//
// The service moves every byte of every backup through short-lived buffers and promises, so V8
// collects garbage constantly. By default it spreads that over four helper threads, which on a
// small server only compete with borg and the client for the same cores: in a 547 MB first backup
// on two vCPUs those threads took 2.5 CPU-s, the service 10.6 CPU-s in all; collecting on the
// thread that allocated took 9.5 CPU-s and the backup finished sooner. A larger young generation
// (64 MiB instead of 16) means fewer collections for the same garbage.
export const STORAGE_NODE_ARGS: readonly string[] = ['--single-threaded-gc', '--max-semi-space-size=64'];
