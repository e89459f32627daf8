// Code tasks: the sandbox contains what generated code may do (no network, memory, CPU and
// wall-clock limits, an empty environment), pass@k is the Codex paper's estimator, and the
// reference solutions of HumanEval and MBPP pass their own tests through the registry's
// program templates (so a model's failure is the model's).
import { test } from "node:test";
import assert from "node:assert/strict";
import { outputSlot, readGenerationItems } from "../../workers/eval/documents.ts";
import { registry, runnableTask } from "../../workers/eval/registry.ts";
import { defaultLimits, passAtK, runPython } from "../../workers/eval/sandbox.ts";

test("pass@k: the unbiased estimator, 1 − C(n−c, k)/C(n, k)", () => {
  const choose = (n: number, k: number): number => (k === 0 ? 1 : (choose(n - 1, k - 1) * n) / k);
  for (const [n, c, k] of [
    [10, 3, 1],
    [10, 3, 5],
    [20, 0, 5],
    [5, 5, 5],
    [200, 17, 100],
  ] as const) {
    const expected = n - c < k ? 1 : 1 - choose(n - c, k) / choose(n, k);
    assert.ok(Math.abs(passAtK(n, c, k) - expected) < 1e-9, `${n} ${c} ${k}`);
  }
  assert.equal(passAtK(4, 1, 1), 0.25);
  assert.throws(() => passAtK(2, 1, 3), /needs at least 3 samples/);
});

test("the sandbox: exit 0 passes; no network, no environment, limits on memory, CPU and time", async () => {
  assert.equal((await runPython("assert 1 + 1 == 2\n")).outcome, "passed");
  const failed = await runPython("assert 1 + 1 == 3, 'arithmetic'\n");
  assert.equal(failed.outcome, "failed");
  assert.match(failed.detail, /AssertionError: arithmetic/);
  // no network: not even the loopback interface is up in the new namespace
  const net = await runPython(
    "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', 22))\n",
  );
  assert.equal(net.outcome, "failed");
  assert.match(net.detail, /OSError|unreachable|refused/i);
  const env = await runPython(
    "import os\nassert 'KUBERNETES_SERVICE_HOST' not in os.environ and 'AWS_SECRET_ACCESS_KEY' not in os.environ and len(os.environ) <= 5, dict(os.environ)\n",
  );
  assert.equal(env.outcome, "passed", env.detail);
  const memory = await runPython("x = bytearray(4 << 30)\n");
  assert.equal(memory.outcome, "failed");
  assert.match(memory.detail, /MemoryError/);
  const slow = await runPython("import time\ntime.sleep(60)\n", {
    ...defaultLimits,
    wallSeconds: 1,
  });
  assert.deepEqual(slow, { outcome: "timeout", detail: "killed after 1 s" });
  const busy = await runPython("while True: pass\n", {
    ...defaultLimits,
    cpuSeconds: 1,
    wallSeconds: 30,
  });
  assert.equal(busy.outcome, "failed", "the CPU limit ends a busy loop before the wall clock");
});

test("HumanEval's and MBPP's reference solutions pass their tests; a wrong one fails", async () => {
  assert.ok(registry().groups["llama-paper"]!.includes("humaneval"));
  const cases: [string, number][] = [
    ["humaneval", 164],
    ["mbpp", 60],
  ];
  for (const [name, limit] of cases) {
    const t = runnableTask({ name, seed: 1 });
    const items = readGenerationItems(t.definition!, t.uri, limit);
    assert.equal(items.length, limit);
    const failures: string[] = [];
    for (const [i, item] of items.entries()) {
      const r = await runPython(item.program!.replace(outputSlot, () => item.answers[0]!));
      if (r.outcome !== "passed") failures.push(`${name} ${i}: ${r.detail}`);
    }
    assert.deepEqual(failures, []);
    const wrong = await runPython(items[0]!.program!.replace(outputSlot, "    return None\n"));
    assert.equal(wrong.outcome, "failed", name);
  }
});
