// The Helm chart (charts/herd): `helm lint`, `helm template` with default and non-default
// values (the rendered objects parsed and checked: security contexts, RBAC rules, replicas,
// images, Temporal TLS, S3 secrets), bad values refused with the field named, the CRDs equal
// to crds/manifests, everything accepted by the local control plane's API server in a
// server-side dry run, and the RBAC proven with `kubectl auth can-i` after a real apply.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse, parseAllDocuments, stringify } from "yaml";
import { installCrds } from "../../crds/install.ts";
import { trainingJob } from "../../crds/trainingjob.ts";
import { attemptPods } from "../../workers/activities/training.ts";
import { trainingJobObject } from "../crds/cases.ts";
import { toolPath } from "../cluster/controlplane.ts";
import { cluster, createNamespace, unique, type Cluster } from "../cluster/harness.ts";

const root = path.resolve(import.meta.dirname, "../..");
const chart = path.join(root, "charts/herd");
const appVersion = (
  parse(readFileSync(path.join(chart, "Chart.yaml"), "utf8")) as {
    appVersion: string;
  }
).appVersion;
const tmp = mkdtempSync(path.join(os.tmpdir(), "herd-chart-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [k: string]: unknown;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  securityContext: Record<string, unknown>;
  resources: { requests?: Record<string, string> };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string } };
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: { name: string; emptyDir?: unknown; secret?: { secretName: string } }[];
}
interface Deployment extends Obj {
  spec: {
    replicas: number;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, PATH: [...toolPath, process.env.PATH].join(":") };
  return new Promise((resolve) =>
    execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = (err as NodeJS.ErrnoException | null)?.code;
      if (code === "ENOENT")
        stderr = `${cmd} is not on PATH: run \`npm run provision\` (scripts/provision.d/45-helm.sh)`;
      resolve({ code: err ? (typeof code === "number" ? code : 1) : 0, stdout, stderr });
    }),
  );
}

let files = 0;
function valuesFile(values: unknown): string {
  const f = path.join(tmp, `values-${files++}.yaml`);
  writeFileSync(f, stringify(values));
  return f;
}

/** `helm template` with these values; the rendered YAML and its objects. */
async function render(
  values: unknown = {},
  { release = "herd", namespace = "herd-system" } = {},
): Promise<{ yaml: string; objects: Obj[] }> {
  const r = await run("helm", [
    "template",
    release,
    chart,
    "--namespace",
    namespace,
    "-f",
    valuesFile(values),
  ]);
  assert.equal(r.code, 0, `helm template failed: ${r.stderr}`);
  const objects = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
  return { yaml: r.stdout, objects };
}

const all = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
function one<T extends Obj = Obj>(objs: Obj[], kind: string, name: string, namespace?: string): T {
  const found = objs.filter(
    (o) =>
      o.kind === kind &&
      o.metadata.name === name &&
      (!namespace || o.metadata.namespace === namespace),
  );
  assert.equal(found.length, 1, `${kind} ${namespace ?? ""}/${name}: ${found.length} rendered`);
  return found[0] as T;
}
const env = (c: Container, name: string) => c.env.find((e) => e.name === name);
const rules = (o: Obj) => (o as unknown as { rules: Rule[] }).rules;

/** The restricted Pod Security Standard, on the pod and every container. */
function assertRestricted(d: Deployment): void {
  const pod = d.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true, d.metadata.name);
  assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
  for (const c of pod.containers) {
    assert.equal(c.securityContext.allowPrivilegeEscalation, false, c.name);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true, c.name);
    assert.deepEqual(c.securityContext.capabilities, { drop: ["ALL"] });
    assert.ok(c.resources.requests?.cpu && c.resources.requests.memory, `${c.name}: requests`);
    const tmpMount = c.volumeMounts.find((m) => m.mountPath === "/tmp");
    assert.ok(tmpMount, `${c.name}: a writable /tmp`);
    assert.ok(pod.volumes.find((v) => v.name === tmpMount.name)?.emptyDir, "/tmp is an emptyDir");
  }
}

test("helm lint passes with default and with non-default values", async () => {
  for (const values of [{}, nonDefault]) {
    const r = await run("helm", ["lint", "--strict", chart, "-f", valuesFile(values)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
});

test("default values: two operators that elect a leader, restricted pods, the release's images", async () => {
  const { objects } = await render();
  const op = one<Deployment>(objects, "Deployment", "herd-operator", "herd-system");
  const worker = one<Deployment>(objects, "Deployment", "herd-worker", "herd-system");
  assert.equal(op.spec.replicas, 2);
  assert.equal(worker.spec.replicas, 1);
  for (const d of [op, worker]) assertRestricted(d);
  const oc = op.spec.template.spec.containers[0]!;
  const wc = worker.spec.template.spec.containers[0]!;
  assert.equal(oc.image, `herd/herd:${appVersion}`);
  // The image's entrypoint is herd (images/Dockerfile); the chart names the command.
  assert.deepEqual([oc.command, oc.args], [undefined, ["operator"]]);
  assert.deepEqual([wc.command, wc.args], [undefined, ["worker"]]);
  assert.equal(env(oc, "HERD_LEADER_ELECT")?.value, "true");
  assert.equal(env(oc, "HERD_LEADER_ELECTION_NAME")?.value, "herd-operator");
  assert.equal(env(oc, "HERD_OPERATOR_NAMESPACE"), undefined, "watches every namespace");
  assert.equal(env(wc, "TEMPORAL_TLS"), undefined, "plaintext by default");
  assert.equal(env(wc, "HERD_TRAINER_IMAGE")?.value, `herd/trainer:${appVersion}`);
  assert.equal(env(wc, "HERD_TRAINER_SERVICE_ACCOUNT")?.value, "herd-trainer");
  assert.equal(env(wc, "HERD_TRAINER_IMAGE_PULL_SECRETS"), undefined);
  assert.equal(op.spec.template.spec.serviceAccountName, "herd-operator");
  assert.equal(worker.spec.template.spec.serviceAccountName, "herd-worker");

  const pdb = one(objects, "PodDisruptionBudget", "herd-operator") as Obj & {
    spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } };
  };
  assert.equal(pdb.spec.minAvailable, 1);
  const svc = one(objects, "Service", "herd-metrics") as Obj & {
    spec: { selector: Record<string, string>; ports: { port: number }[] };
  };
  for (const selector of [pdb.spec.selector.matchLabels, svc.spec.selector])
    for (const [k, v] of Object.entries(selector))
      assert.equal(op.spec.template.metadata.labels[k], v, `selects the operator pods: ${k}`);
  assert.equal(svc.spec.ports[0]!.port, 8080);
  assert.equal(all(objects, "ServiceMonitor").length, 0);
  // The worker serves its own metrics and health on the same port, behind its own Service.
  assert.equal(env(wc, "HERD_WORKER_PORT")?.value, "8080");
  assert.equal(wc.ports?.[0]?.containerPort, 8080);
  assert.equal(wc.livenessProbe?.httpGet?.path, "/healthz");
  const workerSvc = one(objects, "Service", "herd-worker-metrics") as Obj & {
    spec: { selector: Record<string, string> };
  };
  for (const [k, v] of Object.entries(workerSvc.spec.selector))
    assert.equal(worker.spec.template.metadata.labels[k], v, `selects the worker pods: ${k}`);
  assert.notEqual(
    workerSvc.spec.selector["app.kubernetes.io/component"],
    svc.spec.selector["app.kubernetes.io/component"],
  );
});

test("default values: RBAC is least privilege", async () => {
  const { objects } = await render();
  for (const kind of ["Role", "ClusterRole"])
    for (const r of all(objects, kind))
      for (const rule of rules(r))
        for (const field of [rule.apiGroups, rule.resources, rule.verbs])
          assert.ok(!field.includes("*"), `${kind} ${r.metadata.name}: no wildcards`);
  // The operator: herd's kinds (finalizers through patch) and Events; no status, no pods.
  const op = one(objects, "ClusterRole", "herd-operator");
  assert.deepEqual(rules(op), [
    {
      apiGroups: ["herd.dev"],
      resources: ["trainingjobs", "evaljobs", "evalsweeps"],
      verbs: ["get", "list", "watch", "patch"],
    },
    { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  ]);
  const lease = one(objects, "Role", "herd-operator-leader", "herd-system");
  assert.deepEqual(rules(lease)[1]!.resourceNames, ["herd-operator"]);
  // The worker: pods in the release namespace only (a Role), nodes read-only cluster-wide.
  const worker = one(objects, "Role", "herd-worker", "herd-system");
  const res = rules(worker).flatMap((r) => r.resources);
  for (const r of ["pods", "pods/log", "services", "events", "trainingjobs/status"])
    assert.ok(res.includes(r), r);
  for (const r of ["secrets", "trainingjobs"])
    assert.ok(!res.includes(r), `the worker's Role grants ${r}`);
  assert.equal(
    all(objects, "ClusterRole").filter((r) => r.metadata.name === "herd-worker").length,
    0,
  );
  assert.deepEqual(rules(one(objects, "ClusterRole", "herd-worker-nodes")), [
    { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list"] },
  ]);
  // The trainer: a ServiceAccount with no token and no binding at all.
  const trainer = one(objects, "ServiceAccount", "herd-trainer", "herd-system") as Obj & {
    automountServiceAccountToken: boolean;
  };
  assert.equal(trainer.automountServiceAccountToken, false);
  for (const b of [...all(objects, "RoleBinding"), ...all(objects, "ClusterRoleBinding")])
    for (const s of (b as unknown as { subjects: { name: string }[] }).subjects)
      assert.notEqual(s.name, "herd-trainer", `${b.kind} ${b.metadata.name} binds the trainer`);
});

test("the chart's CRDs are crds/manifests, kept on uninstall", async () => {
  const { objects } = await render();
  const crds = all(objects, "CustomResourceDefinition");
  const manifests = readdirSync(path.join(root, "crds/manifests")).sort();
  assert.equal(crds.length, manifests.length);
  for (const file of manifests) {
    const source = parse(readFileSync(path.join(root, "crds/manifests", file), "utf8")) as Obj & {
      spec: unknown;
    };
    const rendered = one(crds, "CustomResourceDefinition", source.metadata.name) as Obj & {
      spec: unknown;
    };
    assert.deepEqual(rendered.spec, source.spec, `${file}: the chart's copy has drifted`);
    assert.equal(rendered.metadata.annotations?.["helm.sh/resource-policy"], "keep");
  }
});

const nonDefault = {
  image: { repository: "registry.example/herd", digest: `sha256:${"ab".repeat(32)}` },
  trainer: {
    image: { repository: "registry.example/trainer", variant: "cpu" },
    imagePullSecrets: [{ name: "regcred" }, { name: "mirror" }],
  },
  crds: { install: false },
  temporal: {
    address: "temporal.example:7233",
    namespace: "herd-prod",
    tls: {
      enabled: true,
      secretName: "temporal-client",
      serverName: "temporal.example",
    },
  },
  s3: {
    endpoint: "https://s3.example",
    bucket: "ckpt",
    credentials: { secretName: "s3-creds", accessKeyIdKey: "id", secretAccessKeyKey: "secret" },
  },
  operator: { replicas: 3, watchNamespace: "team-a", podDisruptionBudget: { minAvailable: 2 } },
  worker: { namespaces: ["team-a", "team-b"], readNodes: false },
  metrics: { serviceMonitor: { enabled: true, labels: { release: "prom" } } },
};

test("non-default values: images by digest, Temporal mTLS, S3 from a Secret, per-namespace roles", async () => {
  const { objects } = await render(nonDefault);
  assert.equal(all(objects, "CustomResourceDefinition").length, 0);
  const op = one<Deployment>(objects, "Deployment", "herd-operator");
  const worker = one<Deployment>(objects, "Deployment", "herd-worker");
  assert.equal(op.spec.replicas, 3);
  for (const d of [op, worker]) {
    assertRestricted(d);
    const pod = d.spec.template.spec;
    const c = pod.containers[0]!;
    assert.equal(c.image, `registry.example/herd@sha256:${"ab".repeat(32)}`);
    assert.equal(env(c, "TEMPORAL_ADDRESS")?.value, "temporal.example:7233");
    assert.equal(env(c, "TEMPORAL_NAMESPACE")?.value, "herd-prod");
    assert.equal(env(c, "TEMPORAL_TLS_SERVER_NAME")?.value, "temporal.example");
    const mount = c.volumeMounts.find((m) => m.name === "temporal-tls");
    assert.equal(mount?.readOnly, true);
    for (const [v, f] of [
      ["TEMPORAL_TLS_CERT", "tls.crt"],
      ["TEMPORAL_TLS_KEY", "tls.key"],
      ["TEMPORAL_TLS_CA", "ca.crt"],
    ])
      assert.equal(env(c, v!)?.value, `${mount!.mountPath}/${f}`);
    assert.equal(
      pod.volumes.find((v) => v.name === "temporal-tls")?.secret?.secretName,
      "temporal-client",
    );
  }
  const oc = op.spec.template.spec.containers[0]!;
  assert.equal(env(oc, "HERD_OPERATOR_NAMESPACE")?.value, "team-a");
  const wc = worker.spec.template.spec.containers[0]!;
  assert.equal(env(wc, "HERD_TRAINER_IMAGE")?.value, `registry.example/trainer:${appVersion}-cpu`);
  assert.equal(env(wc, "HERD_TRAINER_IMAGE_PULL_SECRETS")?.value, "regcred,mirror");
  assert.deepEqual(env(wc, "AWS_ACCESS_KEY_ID")?.valueFrom, {
    secretKeyRef: { name: "s3-creds", key: "id" },
  });
  assert.deepEqual(env(wc, "AWS_SECRET_ACCESS_KEY")?.valueFrom, {
    secretKeyRef: { name: "s3-creds", key: "secret" },
  });
  assert.equal(env(oc, "AWS_SECRET_ACCESS_KEY"), undefined, "the operator gets no S3 keys");
  // Trainer pods read their keys from the Secret of that name in the job's namespace.
  assert.equal(env(wc, "HERD_S3_CREDENTIALS_SECRET")?.value, "s3-creds");

  // The operator watches team-a only: a Role there, no ClusterRole.
  one(objects, "Role", "herd-operator", "team-a");
  assert.equal(
    all(objects, "ClusterRole").length,
    0,
    "readNodes off, one namespace: nothing cluster-wide",
  );
  // The worker: a Role, a RoleBinding and the trainer's ServiceAccount in each namespace it serves.
  for (const ns of ["team-a", "team-b"]) {
    one(objects, "Role", "herd-worker", ns);
    one(objects, "RoleBinding", "herd-worker", ns);
    one(objects, "ServiceAccount", "herd-trainer", ns);
  }
  assert.equal(
    all(objects, "Role").filter(
      (r) => r.metadata.name === "herd-worker" && r.metadata.namespace === "herd-system",
    ).length,
    0,
  );
  const sm = one(objects, "ServiceMonitor", "herd-operator") as Obj & {
    metadata: { labels: Record<string, string> };
  };
  assert.equal(sm.metadata.labels.release, "prom");
  one(objects, "ServiceMonitor", "herd-worker");
  assert.equal(
    (
      one(objects, "PodDisruptionBudget", "herd-operator") as Obj & {
        spec: { minAvailable: number };
      }
    ).spec.minAvailable,
    2,
  );
});

test("a cluster-wide worker gets a ClusterRole, and trainer pods a ServiceAccount only when named", async () => {
  const wide = await render({ worker: { clusterWide: true } });
  one(wide.objects, "ClusterRole", "herd-worker");
  one(wide.objects, "ClusterRoleBinding", "herd-worker");
  const wc = one<Deployment>(wide.objects, "Deployment", "herd-worker").spec.template.spec
    .containers[0]!;
  assert.equal(env(wc, "HERD_TRAINER_SERVICE_ACCOUNT"), undefined);
  const named = await render({
    worker: { clusterWide: true },
    trainer: { serviceAccount: { name: "no-api" } },
  });
  const nc = one<Deployment>(named.objects, "Deployment", "herd-worker").spec.template.spec
    .containers[0]!;
  assert.equal(env(nc, "HERD_TRAINER_SERVICE_ACCOUNT")?.value, "no-api");
});

test("ServiceAccounts carry the annotations of cloud workload identity (IRSA) for S3", async () => {
  const arn = { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/herd" };
  const r = await render({
    trainer: { serviceAccount: { annotations: arn } },
    worker: { serviceAccount: { annotations: arn } },
  });
  type Sa = Obj & { metadata: { annotations?: Record<string, string> } };
  assert.deepEqual(one<Sa>(r.objects, "ServiceAccount", "herd-trainer").metadata.annotations, arn);
  assert.deepEqual(one<Sa>(r.objects, "ServiceAccount", "herd-worker").metadata.annotations, arn);
  assert.equal(
    one<Sa>(r.objects, "ServiceAccount", "herd-operator").metadata.annotations,
    undefined,
  );
  const plain = await render({});
  assert.equal(
    one<Sa>(plain.objects, "ServiceAccount", "herd-trainer").metadata.annotations,
    undefined,
  );
});

test("bad values are refused with the field named", async () => {
  for (const [values, field] of [
    [{ operator: { replicas: "two" } }, "operator.replicas"],
    [{ temporal: { address: "no-port" } }, "temporal.address"],
    [{ worker: { namespaces: ["Team_A"] } }, "worker.namespaces"],
    [{ image: { digest: "latest" } }, "image.digest"],
    [{ trainer: { imagePullSecrets: ["regcred"] } }, "trainer.imagePullSecrets"],
    [
      { operator: { leaderElection: { leaseSeconds: 5, renewSeconds: 10 } } },
      "operator.leaderElection.renewSeconds",
    ],
  ] as const) {
    const r = await run("helm", ["template", "herd", chart, "-f", valuesFile(values)]);
    assert.notEqual(r.code, 0, `${field}: accepted`);
    assert.match(r.stderr, new RegExp(field.replace(/\./g, "[./]")), r.stderr);
  }
});

// Against the local control plane's real API server (started once per test run).
describe("on the local control plane", () => {
  let c: Cluster;
  const namespaces: string[] = [];
  const applied: string[] = [];
  before(async () => {
    c = await cluster();
    await installCrds(c.kc, "herd-tests"); // `kubectl auth can-i` resolves herd's kinds
  });
  after(async () => {
    for (const f of applied)
      await c.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", f);
    for (const ns of namespaces) await c.core.deleteNamespace({ name: ns }).catch(() => {});
  });

  async function namespace(prefix: string): Promise<string> {
    const ns = await createNamespace(c, prefix);
    namespaces.push(ns);
    return ns;
  }

  test("the rendered manifests pass the API server's server-side dry run", async () => {
    const release = await namespace("herd-sys");
    const [a, b] = [await namespace("team-a"), await namespace("team-b")];
    for (const values of [
      {},
      {
        ...nonDefault,
        operator: { ...nonDefault.operator, watchNamespace: a },
        worker: { namespaces: [a, b] },
        metrics: {},
      },
    ]) {
      const { yaml } = await render(values, { release: unique("herd"), namespace: release });
      const f = path.join(tmp, `dry-run-${files++}.yaml`);
      writeFileSync(f, yaml);
      const r = await c.kubectl("apply", "--dry-run=server", "-f", f);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /deployment\.apps\/\S+-operator (created|configured) \(server dry run\)/,
      );
    }
  });

  test("the chart's pods and trainer pods are admitted where Pod Security enforces restricted", async () => {
    const ns = await namespace("restricted");
    const label = await c.kubectl(
      "label",
      "namespace",
      ns,
      "pod-security.kubernetes.io/enforce=restricted",
    );
    assert.equal(label.code, 0, label.stderr);
    const { objects } = await render({}, { namespace: ns });
    const asPod = (name: string, spec: object) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns },
      spec: { ...spec, serviceAccountName: undefined }, // PSA does not look at it
    });
    const trainer = (name: string, checkpoint: string) => {
      const job = trainingJobObject("tj");
      (job.spec as { checkpoint: { uri: string } }).checkpoint.uri = checkpoint;
      const [pod] = attemptPods(
        {
          object: { kind: "TrainingJob", namespace: ns, name: "tj", uid: "u1" },
          attempt: 0,
          spec: trainingJob.parse(job).spec as unknown as Record<string, unknown>,
        },
        { trainerServiceAccount: "x" },
      );
      return asPod(name, pod!.spec!);
    };
    const admitted = [
      ...all(objects, "Deployment").map((d) =>
        asPod(d.metadata.name, (d as Deployment).spec.template.spec),
      ),
      trainer("trainer-s3", "s3://herd-checkpoints/tj"),
    ];
    const f = path.join(tmp, `restricted-${files++}.yaml`);
    writeFileSync(f, admitted.map((o) => stringify(o)).join("---\n"));
    const ok = await c.kubectl("apply", "--dry-run=server", "-f", f);
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stderr, /PodSecurity/);
    // The control: a trainer whose checkpoint is a local folder mounts it by hostPath.
    const g = path.join(tmp, `hostpath-${files++}.yaml`);
    writeFileSync(g, stringify(trainer("trainer-local", "/var/lib/herd/ckpt")));
    const refused = await c.kubectl("apply", "--dry-run=server", "-f", g);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /violates PodSecurity "restricted:latest": .*hostPath/);
  });

  test("RBAC: the trainer may do nothing, the worker only in its namespaces, the operator only herd's kinds", async () => {
    const release = await namespace("herd-sys");
    const served = await namespace("served");
    const other = await namespace("other");
    const name = unique("rbac");
    const { objects } = await render(
      { worker: { namespaces: [served] } },
      { release: name, namespace: release },
    );
    const rbacKinds = [
      "ServiceAccount",
      "Role",
      "RoleBinding",
      "ClusterRole",
      "ClusterRoleBinding",
    ];
    const f = path.join(tmp, `rbac-${name}.yaml`);
    writeFileSync(
      f,
      objects
        .filter((o) => rbacKinds.includes(o.kind))
        .map((o) => stringify(o))
        .join("---\n"),
    );
    applied.push(f);
    const r = await c.kubectl("apply", "-f", f);
    assert.equal(r.code, 0, r.stderr);

    const sa = (who: string) => `system:serviceaccount:${release}:${name}-herd-${who}`;
    const can = async (who: string, ns: string | undefined, ...what: string[]) => {
      const args = ["auth", "can-i", ...what, `--as=${sa(who)}`];
      const res = await c.kubectl(...args, ...(ns ? ["-n", ns] : []));
      assert.ok(res.code === 0 || res.code === 1, `kubectl auth can-i: ${res.stderr}`);
      return res.stdout.trim() === "yes";
    };
    // The trainer's ServiceAccount lives in the served namespace; it is bound to nothing.
    const trainer = `system:serviceaccount:${served}:${name}-herd-trainer`;
    for (const [ns, ...what] of [
      [served, "get", "pods"],
      [served, "list", "trainingjobs.herd.dev"],
      [served, "create", "pods"],
      [served, "get", "secrets"],
      [undefined, "list", "nodes"],
    ] as [string | undefined, ...string[]][]) {
      const res = await c.kubectl(
        "auth",
        "can-i",
        ...what,
        `--as=${trainer}`,
        ...(ns ? ["-n", ns] : []),
      );
      assert.equal(res.stdout.trim(), "no", `trainer may ${what.join(" ")}`);
    }
    // The worker.
    assert.equal(await can("worker", served, "create", "pods"), true);
    assert.equal(await can("worker", served, "delete", "pods"), true);
    assert.equal(await can("worker", served, "get", "pods", "--subresource=log"), true);
    assert.equal(await can("worker", served, "create", "services"), true);
    assert.equal(
      await can("worker", served, "patch", "trainingjobs.herd.dev", "--subresource=status"),
      true,
    );
    assert.equal(await can("worker", undefined, "list", "nodes"), true);
    assert.equal(await can("worker", other, "create", "pods"), false);
    assert.equal(await can("worker", release, "create", "pods"), false);
    assert.equal(await can("worker", served, "get", "secrets"), false);
    assert.equal(await can("worker", served, "delete", "trainingjobs.herd.dev"), false);
    assert.equal(await can("worker", served, "patch", "trainingjobs.herd.dev"), false);
    // The operator.
    assert.equal(await can("operator", other, "watch", "trainingjobs.herd.dev"), true);
    assert.equal(await can("operator", other, "patch", "evalsweeps.herd.dev"), true);
    assert.equal(await can("operator", other, "create", "events"), true);
    assert.equal(
      await can("operator", release, "update", `leases.coordination.k8s.io/${name}-herd-operator`),
      true,
    );
    assert.equal(
      await can("operator", release, "update", "leases.coordination.k8s.io/someone-else"),
      false,
    );
    assert.equal(
      await can("operator", other, "patch", "trainingjobs.herd.dev", "--subresource=status"),
      false,
    );
    assert.equal(await can("operator", other, "create", "pods"), false);
    assert.equal(await can("operator", other, "delete", "trainingjobs.herd.dev"), false);
  });
});
