// `herd report` as a user runs it: by a TrainingJob's name against the real kube-apiserver of
// the local control plane, from a checkpoint folder with the default output name, and bad
// input (missing or empty folder, a broken metrics line, s3:// storage, no or two sources)
// answered with exit code 64 and an error that names the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { parse } from "yaml";
import { installCrds } from "../../crds/install.ts";
import { clusterEnv } from "../api/env.ts";
import { unique } from "../cluster/harness.ts";
import { herdBin, train, trainingJob } from "./fixture.ts";
import { freshGoodput, GoodputLedger } from "../../workflows/goodput.ts";

/**
 * A TrainingJob's status after two attempts at a step a second: 50 steps, its node lost 10
 * steps after its last checkpoint; then 50 more, done. 100 s of 200 s productive.
 */
function twoAttempts() {
  const at = (s: number) => new Date(Date.UTC(2026, 11, 7, 0, 0, s)).toISOString();
  const ledger = new GoodputLedger(freshGoodput(at(0)), at(0));
  ledger.started(1, 0, at(0));
  ledger.progress({ step: 60, time: at(60), first: { step: 1, time: at(1) } });
  const ckpt = { step: 50, uri: "/c", time: at(51) };
  ledger.ended({ kind: "preempted", reason: "NodeLost" }, 60, ckpt, at(70));
  ledger.started(2, 50, at(100));
  ledger.progress({ step: 100, time: at(199), first: { step: 51, time: at(150) } });
  ledger.ended({ kind: "succeeded", reason: "Completed" }, 100, { ...ckpt, step: 100 }, at(200));
  return { phase: "Succeeded", startTime: at(0), ...ledger.status(at(200)) };
}

const work = mkdtempSync(path.join(tmpdir(), "herd-report-cli-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

const report = (args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync(process.execPath, [herdBin, "report", ...args], { encoding: "utf8", ...options });

// A 4-step run with one checkpoint, shared by the tests below.
const manifest = trainingJob(work, "cli-tiny");
const run = path.join(work, "run");
test.before(() => train(manifest, 4));

test("--checkpoints writes <folder name>-report.html in the current folder", () => {
  const cwd = path.join(work, "cwd");
  mkdirSync(cwd);
  const r = report(["--checkpoints", run], { cwd });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /run-report\.html \(4 steps, 0 eval charts\)/);
  const html = readFileSync(path.join(cwd, "run-report.html"), "utf8");
  assert.match(html, /<title>herd report: run<\/title>/);
  assert.match(html, /"step":4,"tokens":1024/);
});

test("herd report <name> reads spec.checkpoint.uri from the TrainingJob in the cluster", async () => {
  const env = await clusterEnv();
  await installCrds(env.kubeconfig, "herd-tests");
  const namespace = unique("herd-report");
  const core = env.kubeconfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  try {
    // No operator watches this namespace: the object only carries the checkpoint URI.
    const job = parse(readFileSync(manifest, "utf8"));
    job.spec.checkpoint.uri = `file://${run}`;
    await env.kubeconfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: "herd.dev",
      version: "v1alpha1",
      namespace,
      plural: "trainingjobs",
      body: job,
    });
    const kube = { env: { ...process.env, KUBECONFIG: env.kubeconfigPath }, cwd: work };
    const r = report(["cli-tiny", "-n", namespace, "-o", "by-name.html"], kube);
    assert.equal(r.status, 0, r.stderr);
    const html = readFileSync(path.join(work, "by-name.html"), "utf8");
    assert.match(html, /<h1>herd report: cli-tiny<\/h1>/);
    assert.match(html, new RegExp(`Checkpoints: ${run} · 4 steps logged · 1 checkpoint present`));
    assert.doesNotMatch(html, /id="goodput"/); // no status, no attempts

    // Status as a workflow writes it (through the CRD's schema): the attempts are drawn.
    const status = twoAttempts();
    await env.kubeconfig.makeApiClient(CustomObjectsApi).patchNamespacedCustomObjectStatus(
      {
        group: "herd.dev",
        version: "v1alpha1",
        namespace,
        plural: "trainingjobs",
        name: "cli-tiny",
        body: { status },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    assert.equal(report(["cli-tiny", "-n", namespace, "-o", "by-name.html"], kube).status, 0);
    const drawn = readFileSync(path.join(work, "by-name.html"), "utf8");
    assert.match(
      drawn,
      /Goodput 50\.0 %: 100\.0 s of 3\.3 min went into steps that were kept; 10 steps trained again\./,
    );
    assert.deepEqual(
      [...drawn.matchAll(/data-attempt="(\d+)" data-outcome="(\w+)"/g)].map((m) => [m[1], m[2]]),
      [
        ["1", "preempted"],
        ["2", "succeeded"],
      ],
    );

    const missing = report(["no-such-job", "-n", namespace], kube);
    assert.equal(missing.status, 64);
    assert.match(missing.stderr, new RegExp(`TrainingJob ${namespace}/no-such-job not found`));
    assert.equal(existsSync(path.join(work, "no-such-job-report.html")), false);
  } finally {
    await core.deleteNamespace({ name: namespace }).catch(() => {});
  }
});

test("bad input exits 64 with an error naming the problem", () => {
  const empty = path.join(work, "empty");
  mkdirSync(empty);
  const broken = path.join(work, "broken");
  mkdirSync(broken);
  writeFileSync(
    path.join(broken, "metrics.jsonl"),
    '{"step":1,"tokens":256,"loss":5.5,"lr":0.001}\n{"step":2,"tokens":512,"loss":"high","lr":0.001}\n',
  );
  const s3 = path.join(work, "s3.yaml");
  writeFileSync(
    s3,
    readFileSync(manifest, "utf8").replace("uri: run,", "uri: s3://bucket/runs/tiny,"),
  );
  const cases: [string[], RegExp][] = [
    [[], /give one of a TrainingJob name, -f <manifest>, --checkpoints <dir> or --results <file>/],
    [["a", "-f", manifest], /give one of/],
    [["--checkpoints", path.join(work, "nope")], /checkpoint folder .*\/nope does not exist/],
    [["--checkpoints", manifest], /cli-tiny\.yaml is not a folder/],
    [["--checkpoints", empty], /empty: no checkpoints \(step-NNNNNNNNN\/\), metrics\.jsonl/],
    [["--checkpoints", broken], /broken\/metrics\.jsonl:2: loss must be a finite number/],
    [["-f", path.join(work, "nope.yaml")], /cannot read .*nope\.yaml/],
    [["-f", s3], /s3:\/\/bucket\/runs\/tiny: no S3 endpoint and credentials are configured/],
    [["--frobnicate"], /Unknown option '--frobnicate'/],
  ];
  // No object storage configured: s3:// folders are an error that says so.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(HERD_S3_|AWS_)/.test(k)),
  );
  for (const [args, message] of cases) {
    const r = report([...args, "-o", path.join(work, "never.html")], { env });
    assert.equal(r.status, 64, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(" "));
  }
  assert.equal(existsSync(path.join(work, "never.html")), false);
});
