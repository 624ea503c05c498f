// Node options of the repository service process (worker/storage-main.js), shared by every
// launcher (npm start, the test stack, the benchmarks) so that what is measured is what runs.
//
// The service moves every byte of every backup through short-lived buffers and promises, so V8
// collects garbage constantly. By default it spreads that over four helper threads, which on a
// small server only compete with borg and the client for the same cores: in a 547 MB first backup
// on two vCPUs those threads took 2.5 CPU-s, the service 10.6 CPU-s in all; collecting on the
// thread that allocated took 9.5 CPU-s and the backup finished sooner.
//
// The young generation starts at 16 MiB per semi-space (V8 starts at 1 MiB and grew it little
// here) and the old generation's first limit is 256 MiB. With V8's defaults the objects of puts
// still in flight survived two scavenges and were promoted, the old generation reached its limit
// about every half second, and each time the whole heap (~40 MB, Temporal's SDK included) was
// marked: 20 full collections, 1.6 s of the main thread, in one 547 MB first backup. With these
// settings that backup has 1–4 and the service uses 7.2–8.7 CPU-s instead of 9.9–10.9
// (bench:backup, --trace-gc and per-thread CPU from /proc, 2026-11-27). The price is memory: the
// service's peak RSS in that backup rose from 420 MB to 560–650 MB.
export const STORAGE_NODE_ARGS: readonly string[] = ['--single-threaded-gc', '--min-semi-space-size=16', '--max-semi-space-size=64', '--initial-old-space-size=256'];
