/** Moved to scripts/harness/, which the benchmarks and the demo share. */
export * from "../../scripts/harness/fleet.ts";
