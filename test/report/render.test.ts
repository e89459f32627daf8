// `herd report` on a real run, opened in headless Chromium: after the page's script ran, the
// DOM holds the loss curve and one chart per eval task and metric, with the points, values
// and standard errors of the input files; a screenshot is taken too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { evaluate, herd, tokensPerStep, train, trainingJob } from "./fixture.ts";

const work = mkdtempSync(path.join(tmpdir(), "herd-report-render-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// Headless Chromium with a profile of its own (parallel runs must not share one); root
// needs --no-sandbox.
function chromium(...args: string[]): string {
  const r = spawnSync(
    "chromium",
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      `--user-data-dir=${path.join(work, "chromium")}`,
      ...args,
    ],
    { encoding: "utf8", timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Attributes of every element whose opening tag matches `tag` and has the given class. */
function elements(dom: string, tag: string, cls: string): Record<string, string>[] {
  const found: Record<string, string>[] = [];
  for (const m of dom.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, "g"))) {
    const attrs = Object.fromEntries(
      [...m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]),
    );
    if (attrs.class?.split(" ").includes(cls)) found.push(attrs);
  }
  return found;
}

test("the report renders in Chromium with the loss curve and every eval metric", async () => {
  const job = trainingJob(work);
  const steps = train(job, 12);
  const results = [await evaluate(path.join(work, "run"), 4, "early")];
  results.push(await evaluate(path.join(work, "run"), 12, "late"));
  const out = path.join(work, "report.html");
  const r = herd("report", "-f", job, "-o", out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /12 steps, 6 eval charts/);
  const html = readFileSync(out, "utf8");
  assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/, "the page loads nothing");

  const dom = chromium("--dump-dom", pathToFileURL(out).href);
  assert.match(dom, /<body[^>]* data-rendered="true"/, "the page's script ran to the end");
  assert.match(dom, /<p id="error" hidden="">/);

  const series = elements(dom, "g", "series");
  const expected = [
    "training loss",
    ...results[1]!.tasks.flatMap((t) => t.metrics.map((m) => `${t.task} ${m.name}`)),
  ];
  assert.deepEqual(series.map((s) => s["data-name"]).sort(), expected.sort());
  const loss = series.find((s) => s["data-name"] === "training loss")!;
  assert.equal(loss["data-points"], "12");
  for (const s of series.slice(1)) assert.equal(s["data-points"], "2", s["data-name"]);

  // The loss line: 12 vertices, left to right, the lowest loss drawn highest on the page
  // (largest y).
  const d = [
    ...dom.matchAll(/<g class="series" data-name="training loss"[^>]*><path d="([^"]+)"/g),
  ];
  const vertices = [...d[0]![1]!.matchAll(/[ML]([\d.]+) ([\d.]+)/g)].map((v) => [
    Number(v[1]),
    Number(v[2]),
  ]);
  assert.equal(vertices.length, 12);
  assert.ok(vertices.every((v, i) => i === 0 || v[0]! > vertices[i - 1]![0]!));
  const lowest = steps.reduce((best, s, i) => (s.loss < steps[best]!.loss ? i : best), 0);
  const highest = steps.reduce((best, s, i) => (s.loss > steps[best]!.loss ? i : best), 0);
  assert.equal(Math.max(...vertices.map((v) => v[1]!)), vertices[lowest]![1]);
  assert.equal(Math.min(...vertices.map((v) => v[1]!)), vertices[highest]![1]);
  const last = steps[11]!.loss.toFixed(4);
  assert.match(dom, new RegExp(`Last: loss ${last} at step 12, 3.07k tokens \\(3,072\\)`));

  // Eval points: at the checkpoints' tokens, with the results files' values and stderrs.
  const points = elements(dom, "g", "point");
  assert.equal(points.length, (expected.length - 1) * 2);
  const piqaAcc = results.map((res) => res.tasks[0]!.metrics.find((m) => m.name === "acc")!);
  const accPoints = [
    ...dom.matchAll(/<g class="series" data-name="piqa acc" .*?<\/g><\/svg>/gs),
  ][0]![0];
  const acc = elements(accPoints, "g", "point");
  assert.deepEqual(
    acc.map((p) => [Number(p["data-tokens"]), Number(p["data-value"]), Number(p["data-stderr"])]),
    [
      [4 * tokensPerStep, piqaAcc[0]!.value, piqaAcc[0]!.stderr],
      [12 * tokensPerStep, piqaAcc[1]!.value, piqaAcc[1]!.stderr],
    ],
  );
  const ppl = results[1]!.tasks[1]!.metrics.find((m) => m.name === "perplexity")!;
  assert.ok(
    points.some((p) => Number(p["data-value"]) === ppl.value && !("data-stderr" in p)),
    "tinystories perplexity at step 12, without whiskers",
  );
  assert.equal((accPoints.match(/class="err"/g) ?? []).length, 2 * 3, "3 whisker lines a point");

  // A screenshot, to look at: a PNG of the requested size.
  const png = path.join(work, "report.png");
  chromium(
    "--hide-scrollbars",
    "--window-size=1200,1500",
    `--screenshot=${png}`,
    pathToFileURL(out).href,
  );
  const bytes = readFileSync(png);
  assert.deepEqual([...bytes.subarray(1, 4)], [...Buffer.from("PNG")]);
  assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], [1200, 1500]);
});
