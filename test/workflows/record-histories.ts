// Records one history per workflow type from the local plane's Temporal into
// test/workflows/histories/, for replay.test.ts. Run it after the e2e tests (or the demo, an
// EvalJob and an EvalSweep) have completed workflows of every type on the current code:
//
//   node --import tsx test/workflows/record-histories.ts [--state <plane folder>]
//     [--types trainingJobWorkflow,...] [--since <ISO time>] [--tag b]
//
// --since takes only runs started after that time (runs of the new code, when the plane also
// holds older ones); --tag names the file <type>.<day><tag>.json, beside a fixture of the
// same day.
//
// For each type it takes the completed run with the most events under a size limit, so the
// fixture covers as much of the workflow as a test run produced (attempts, preemptions, spec
// changes, continue-as-new) while staying small. Record again only together with a change of
// workflow code that is meant to be incompatible (then running workflows need a patch or a
// new worker version: docs/operations.md); otherwise keep the old fixtures, which are the point.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Client, Connection } from "@temporalio/client";
import { defaultStateDir, endpoints } from "../cluster/controlplane.ts";

const types = [
  "trainingJobWorkflow",
  "evalJobWorkflow",
  "evalSweepWorkflow",
  "evalSweepRunWorkflow",
];
const maxBytes = 2 << 20;

const { values } = parseArgs({
  options: {
    state: { type: "string" },
    types: { type: "string" },
    since: { type: "string" },
    tag: { type: "string", default: "" },
  },
});
const { temporalAddress } = endpoints(path.resolve(values.state ?? defaultStateDir()));
const connection = await Connection.connect({ address: temporalAddress });
const client = new Client({ connection });
try {
  for (const type of values.types?.split(",") ?? types) {
    let best: { id: string; events: number; json: string } | undefined;
    const query =
      `WorkflowType = '${type}' AND ExecutionStatus IN ('Completed', 'ContinuedAsNew')` +
      (values.since ? ` AND StartTime > '${new Date(values.since).toISOString()}'` : "");
    for await (const run of client.workflow.list({ query })) {
      // the Temporal CLI writes the JSON form of a history that Worker.runReplayHistory reads
      const json = execFileSync(
        "temporal",
        ["workflow", "show", "--address", temporalAddress, "--output", "json"].concat([
          "--workflow-id",
          run.workflowId,
          "--run-id",
          run.runId,
        ]),
        { encoding: "utf8", maxBuffer: 64 << 20 },
      );
      const events = (JSON.parse(json) as { events: unknown[] }).events.length;
      if (json.length <= maxBytes && events > (best?.events ?? 0))
        best = { id: `${run.workflowId}/${run.runId}`, events, json };
    }
    if (!best)
      throw new Error(`no completed ${type} on ${temporalAddress}: run the e2e tests first`);
    const day = new Date().toISOString().slice(0, 10);
    const file = path.join(import.meta.dirname, "histories", `${type}.${day}${values.tag}.json`);
    writeFileSync(file, best.json.trimEnd() + "\n");
    console.log(
      `${type}: ${best.events} events from ${best.id} → ${path.relative(process.cwd(), file)}`,
    );
  }
} finally {
  await connection.close();
}
