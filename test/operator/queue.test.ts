// The work queue: dedupe, no concurrent processing of a key, dirty re-queue, back-off.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkQueue } from "../../operator/queue.ts";
import { Counter, Histogram, Registry } from "../../operator/metrics.ts";

test("a key queued twice is processed once", async () => {
  const q = new WorkQueue();
  q.add("a");
  q.add("a");
  q.add("b");
  assert.equal(q.depth, 2);
  assert.equal(await q.get(), "a");
  assert.equal(await q.get(), "b");
  assert.equal(q.depth, 0);
});

test("an add while the key is processed re-queues it after done, not before", async () => {
  const q = new WorkQueue();
  q.add("a");
  const k = await q.get();
  q.add("a");
  assert.equal(q.depth, 0, "not handed out while in flight");
  q.done(k!);
  assert.equal(q.depth, 1);
  assert.equal(await q.get(), "a");
});

test("of two delayed adds of a key the sooner wins; one add, not two", async () => {
  const q = new WorkQueue();
  q.addAfter("a", 60_000); // the periodic check
  q.addAfter("a", 20); // a cancellation being polled: must not wait a minute
  q.addAfter("a", 40); // later than the pending one: ignored
  const started = Date.now();
  // The queue's timers do not hold the process open; this one does, meanwhile.
  const keepAlive = setTimeout(() => {}, 5000);
  assert.equal(await q.get(), "a");
  assert.ok(Date.now() - started < 1000, "the 20 ms add ran, not the 60 s one");
  q.done("a");
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(q.depth, 0, "the replaced and the ignored adds do not run");
  clearTimeout(keepAlive);
  q.shutDown();
});

test("failures back off exponentially per key, and forget resets", () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 35 });
  assert.equal(q.addRateLimited("x"), 10);
  assert.equal(q.addRateLimited("x"), 20);
  assert.equal(q.addRateLimited("x"), 35);
  assert.equal(q.retries("x"), 3);
  q.forget("x");
  assert.equal(q.addRateLimited("x"), 10);
  q.shutDown();
});

test("a waiting get is woken by add and released by shutdown", async () => {
  const q = new WorkQueue();
  const first = q.get();
  q.add("k");
  assert.equal(await first, "k");
  const second = q.get();
  q.shutDown();
  assert.equal(await second, undefined);
});

test("metrics render in the Prometheus text format", () => {
  const r = new Registry();
  const c = r.register(new Counter("x_total", "help"));
  const h = r.register(new Histogram("lat_seconds", "latency", [0.1, 1]));
  c.inc({ kind: "TrainingJob" });
  c.inc({ kind: "TrainingJob" });
  h.observe(0.5);
  const text = r.render();
  assert.match(text, /# TYPE x_total counter\nx_total\{kind="TrainingJob"\} 2/);
  assert.match(
    text,
    /lat_seconds_bucket\{le="0.1"\} 0\nlat_seconds_bucket\{le="1"\} 1\nlat_seconds_bucket\{le="\+Inf"\} 1/,
  );
  assert.match(text, /lat_seconds_count 1/);
});
