// Leader election on a real kube-apiserver: of two electors racing for one Lease exactly one
// wins; two `herd operator --leader-elect` processes over the same namespace have one leader
// that reconciles while the other stands by, and when the leader is killed (SIGKILL: no
// release) the standby takes over once the Lease expires; a leader stopped by SIGTERM hands
// the Lease back at once.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { Client, Connection } from "@temporalio/client";
import { kinds } from "../../crds/kinds.ts";
import { LeaderElector } from "../../operator/leader.ts";
import { trainingJobObject } from "../crds/cases.ts";
import { clusterEnv } from "./env.ts";
import { applyCrds, createObject, getObject, patchObject, silent, waitFor } from "./helpers.ts";
import { freePort } from "../cluster/ports.ts";

const env = await clusterEnv();
const root = path.resolve(import.meta.dirname, "../..");
const namespace = `herd-leader-${randomBytes(3).toString("hex")}`;
const core = env.kubeconfig.makeApiClient(CoreV1Api);
const leases = env.kubeconfig.makeApiClient(CoordinationV1Api);
const workflowIds: string[] = [];

before(async () => {
  await applyCrds(env);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
});

after(async () => {
  // The operators started workflows on the shared task queue: end them, then let the
  // objects go (their finalizers outlive the operators) and the namespace with them.
  const connection = await Connection.connect({ address: env.temporalAddress });
  const client = new Client({ connection });
  for (const id of workflowIds)
    await client.workflow
      .getHandle(id)
      .terminate("test over")
      .catch(() => {});
  await connection.close();
  const custom = env.kubeconfig.makeApiClient(CustomObjectsApi);
  for (const info of kinds) {
    const list = (await custom.listNamespacedCustomObject({
      group: "herd.dev",
      version: "v1alpha1",
      namespace,
      plural: info.plural,
    })) as { items: { metadata: { name: string } }[] };
    for (const o of list.items)
      await patchObject(env, info.kind, namespace, o.metadata.name, {
        metadata: { finalizers: null },
      }).catch(() => {});
  }
  await core.deleteNamespace({ name: namespace }).catch(() => {});
});

const holder = async (name: string) =>
  (await leases.readNamespacedLease({ name, namespace })).spec ?? {};

test("of two electors racing for one Lease exactly one leads; release hands it over", async () => {
  const name = "race";
  const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200 };
  const a = new LeaderElector(env.kubeconfig, {
    namespace,
    name,
    identity: "a",
    logger: silent,
    ...timing,
  });
  const b = new LeaderElector(env.kubeconfig, {
    namespace,
    name,
    identity: "b",
    logger: silent,
    ...timing,
  });
  const winner = await Promise.race([a.acquire().then(() => a), b.acquire().then(() => b)]);
  const loser = winner === a ? b : a;
  assert.equal(winner.isLeader, true);
  assert.equal(loser.isLeader, false);
  assert.equal((await holder(name)).holderIdentity, winner === a ? "a" : "b");
  // The loser keeps trying; it gets the Lease only after the winner lets go.
  const lost = winner.keepLeading();
  const taken = new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (loser.isLeader) {
        clearInterval(t);
        resolve();
      }
    }, 50);
  });
  assert.equal(loser.isLeader, false);
  await winner.release();
  assert.equal(await lost, "stopped");
  await taken;
  assert.equal((await holder(name)).holderIdentity, winner === a ? "b" : "a");
  loser.stop();
});

interface OperatorProcess {
  port: number;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

async function operatorProcess(lease: string): Promise<OperatorProcess> {
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    [
      path.join(root, "bin/herd.mjs"),
      "operator",
      "--leader-elect",
      "--namespace",
      namespace,
      "--port",
      String(port),
    ],
    {
      env: {
        ...process.env,
        KUBECONFIG: env.kubeconfigPath,
        TEMPORAL_ADDRESS: env.temporalAddress,
        HERD_LEADER_ELECTION_NAMESPACE: namespace,
        HERD_LEADER_ELECTION_NAME: lease,
        HERD_LEADER_ELECTION_LEASE_SECONDS: "4",
        HERD_LEADER_ELECTION_RENEW_SECONDS: "3",
        HERD_LEADER_ELECTION_RETRY_SECONDS: "0.5",
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const exited = new Promise<number | null>((resolve) => proc.once("exit", resolve));
  return { port, proc, exited };
}

/** A metric's value from one replica's /metrics (summed over labels); 0 when absent. */
async function metric(o: OperatorProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${o.port}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
}

async function reconciled(name: string): Promise<void> {
  const job = trainingJobObject(name);
  const created = await createObject(env, namespace, job);
  workflowIds.push(`herd/TrainingJob/${namespace}/${name}/${created.metadata.uid}`);
  await waitFor(`${name} to get the operator's finalizer`, async () => {
    const o = await getObject(env, "TrainingJob", namespace, name);
    return o?.metadata.finalizers?.includes("herd.dev/workflow") ? true : undefined;
  });
}

test("two operator processes: one leads, the standby takes over when the leader is killed", async () => {
  const lease = "herd-operator-test";
  const ops = [await operatorProcess(lease), await operatorProcess(lease)];
  try {
    // Both serve /readyz (the standby answers "standby"); exactly one leads.
    const [leader, standby] = await waitFor(
      "one leader and one standby",
      async () => {
        const flags = await Promise.all(ops.map((o) => metric(o, "herd_operator_leader")));
        if (flags[0]! + flags[1]! !== 1) return undefined;
        return flags[0] === 1 ? [ops[0]!, ops[1]!] : [ops[1]!, ops[0]!];
      },
      60_000,
    );
    const ready = await fetch(`http://127.0.0.1:${standby.port}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), "standby\n");
    const first = (await holder(lease)).holderIdentity;
    assert.ok(first, "the Lease names its holder");

    await reconciled("first");
    // The finalizer and the workflow's start go out together; the reconcile counts once both
    // returned, a moment after the finalizer shows.
    await waitFor("the leader to count its reconcile", async () =>
      (await metric(leader, "herd_operator_reconciles_total")) > 0 ? true : undefined,
    );
    assert.equal(await metric(standby, "herd_operator_reconciles_total"), 0);

    // Killed: no release, so the standby waits for the Lease to expire, then leads.
    leader.proc.kill("SIGKILL");
    await leader.exited;
    await waitFor("the standby to lead", async () =>
      (await metric(standby, "herd_operator_leader")) === 1 ? true : undefined,
    );
    const after = await holder(lease);
    assert.notEqual(after.holderIdentity, first);
    assert.equal(after.leaseTransitions, 1);
    await reconciled("second");
    await waitFor("the new leader to count its reconciles", async () =>
      (await metric(standby, "herd_operator_reconciles_total")) > 0 ? true : undefined,
    );

    // A graceful stop releases the Lease for the next replica.
    standby.proc.kill("SIGTERM");
    assert.equal(await standby.exited, 0);
    assert.equal((await holder(lease)).holderIdentity, "");
  } finally {
    for (const o of ops) o.proc.kill("SIGKILL");
  }
});
