// A workflow runs to completion on the dev server's Temporal, with a real worker.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { DefaultLogger, NativeConnection, Runtime, Worker } from "@temporalio/worker";
import { cluster, unique } from "./harness.ts";
import type { Cluster } from "./harness.ts";

let c: Cluster;
before(async () => {
  Runtime.install({ logger: new DefaultLogger("WARN") });
  c = await cluster();
});

test("a Temporal workflow completes on the dev server", async () => {
  const taskQueue = unique("herd-test");
  const connection = await NativeConnection.connect({ address: c.temporalAddress });
  const worker = await Worker.create({
    connection,
    namespace: "default",
    taskQueue,
    workflowsPath: path.join(import.meta.dirname, "temporal", "workflows.ts"),
    activities: { greet: async (name: string) => `hello, ${name}` },
  });
  const clientConnection = await Connection.connect({ address: c.temporalAddress });
  try {
    const client = new Client({ connection: clientConnection, namespace: "default" });
    const workflowId = unique("hello");
    const result = await worker.runUntil(
      client.workflow.execute("hello", { taskQueue, workflowId, args: ["herd"] }),
    );
    assert.equal(result, "hello, herd");
    const described = await client.workflow.getHandle(workflowId).describe();
    assert.equal(described.status.name, "COMPLETED");
  } finally {
    await clientConnection.close();
    await connection.close();
  }
});
