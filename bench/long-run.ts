// Week-long-run benchmark: a training job of N simulated days (default 7) whose pods step once
// a second and report progress, run by the real workflow on Temporal's time-skipping test
// server (test/workflows/long-run.ts). Prints the largest history of any run of the workflow
// against Temporal's limits (51,200 events and 50 MB terminate a workflow; herd's own budget
// is 5,000 events and 5 MB), how many runs it took, and the status writes per simulated hour.
//
//   node --import tsx bench/long-run.ts [--days 7]
import { parseArgs } from "node:util";
import { simulateLongRun } from "../test/workflows/long-run.ts";

const { values } = parseArgs({ options: { days: { type: "string", default: "7" } } });
const days = Number(values.days);
const r = await simulateLongRun({ days, preemptAtHours: [days * 8] });
const maxEvents = Math.max(...r.runs.map((run) => run.events));
const maxBytes = Math.max(...r.runs.map((run) => run.bytes));
console.log(
  `simulated job:               ${days} days, ${days * 86_400} steps, phase ${r.state.phase}`,
);
console.log(`workflow runs:               ${r.runs.length} (${r.attempts} attempts)`);
console.log(`max history events per run: ${maxEvents}`);
console.log(`  vs Temporal's limit:       ${(maxEvents / 51_200).toFixed(3)} of 51,200`);
console.log(`max history bytes per run:   ${(maxBytes / 1e6).toFixed(2)} MB`);
console.log(`  vs Temporal's limit:       ${(maxBytes / (50 * 1024 * 1024)).toFixed(3)} of 50 MiB`);
console.log(`status writes per hour:      ${(r.statusWrites / (days * 24)).toFixed(1)}`);
console.log(`wall time:                   ${r.seconds.toFixed(0)} s`);
