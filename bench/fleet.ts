// `npm run bench:fleet`: the fleet benchmarks of issue 23. `--real` is a storage host's capacity
// with real clients (bench/fleet-real.ts); without it, the 10,000-client simulation.
//
// Minimal dispatcher written with the `--real` mode: the simulation's own bench/fleet.ts (branch
// fleet-bench) replaces this file and keeps the `--real` branch below.
const i = process.argv.indexOf('--real');
if (i >= 0) {
  process.argv.splice(i, 1);
  const { fleetReal } = await import('./fleet-real.js');
  fleetReal();
} else {
  process.stderr.write('bench:fleet: the simulated mode is not in this build; run `npm run bench:fleet -- --real` for real clients\n');
  process.exit(2);
}
