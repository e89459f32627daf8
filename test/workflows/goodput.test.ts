// Goodput (workflows/goodput.ts): each ended attempt's record, and the job's ratio of
// productive time to wall time, worked out by hand for a job preempted once (its SIGTERM
// checkpoint kept every step), then lost with its node (10 steps after its last checkpoint),
// then finished.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  attemptHistoryLimit,
  attemptRecord,
  freshGoodput,
  GoodputLedger,
  goodputOfStatus,
} from "../../workflows/goodput.ts";

const at = (s: number) => new Date(Date.UTC(2026, 11, 7, 0, 0, s)).toISOString();
const checkpoint = (step: number, s: number) => ({ step, uri: `/c/step-${step}`, time: at(s) });

test("three attempts: steps lost, SIGTERM checkpoint latency, time to resume, goodput", () => {
  const ledger = new GoodputLedger(freshGoodput(at(0)), at(0));
  // Attempt 1: pods at 10 s, steps 1..100 at one a second from 20 s; preempted at 120 s, its
  // checkpoint of step 100 durable at 123 s.
  ledger.started(1, 0, at(10));
  ledger.progress({ step: 40, time: at(59), first: { step: 1, time: at(20) } });
  ledger.progress({ step: 100, time: at(119), first: { step: 60, time: at(79) } });
  ledger.ended(
    { kind: "preempted", reason: "PreemptionByScheduler", stopAt: at(120) },
    100,
    checkpoint(100, 123),
    at(124),
  );
  // Attempt 2: resumed from 100; the first step it was seen at is 105 (at 150 s); its node is
  // lost after step 150, its newest checkpoint holds step 140.
  ledger.started(2, 100, at(125));
  ledger.progress({ step: 150, time: at(195), first: { step: 105, time: at(150) } });
  ledger.ended({ kind: "preempted", reason: "NodeLost" }, 150, checkpoint(140, 186), at(200));
  // Attempt 3: from 140 to 200, then done.
  ledger.started(3, 140, at(205));
  ledger.progress({ step: 200, time: at(279), first: { step: 141, time: at(220) } });
  ledger.ended({ kind: "succeeded", reason: "Completed" }, 200, checkpoint(200, 280), at(281));

  const { attemptHistory, goodput } = ledger.status(at(281));
  assert.deepEqual(
    attemptHistory!.map((r) => [r.attempt, r.outcome, r.fromStep, r.toStep, r.stepsLost]),
    [
      [1, "preempted", 0, 100, 0],
      [2, "preempted", 100, 150, 10],
      [3, "succeeded", 140, 200, 0],
    ],
  );
  // First steps: 20 s after the job's start; 146 s (back from step 105 at 150 s) after 124 s;
  // 220 s after 200 s.
  assert.deepEqual(
    attemptHistory!.map((r) => r.resumeSeconds),
    [20, 22, 20],
  );
  assert.deepEqual(
    attemptHistory!.map((r) => r.checkpointSeconds),
    [3, undefined, undefined],
  );
  // One second a step: 100 kept, 40 kept (10 of 50 lost), 60 kept.
  assert.deepEqual(
    attemptHistory!.map((r) => r.productiveSeconds),
    [100, 40, 60],
  );
  assert.deepEqual(goodput, {
    ratio: Math.round((200 / 281) * 1e4) / 1e4,
    productiveSeconds: 200,
    wallSeconds: 281,
    suspendedSeconds: 0,
    stepsLost: 10,
  });
});

test("a suspension is not wall time; a running attempt counts its steps so far", () => {
  const ledger = new GoodputLedger(freshGoodput(at(0)), at(0));
  ledger.started(1, 0, at(0));
  ledger.progress({ step: 50, time: at(50), first: { step: 1, time: at(1) } });
  assert.equal(ledger.status(at(50)).goodput.productiveSeconds, 50);
  ledger.ended(
    { kind: "suspended", reason: "Suspended", stopAt: at(51) },
    50,
    checkpoint(50, 52),
    at(53),
  );
  ledger.suspended(at(53));
  assert.deepEqual(ledger.status(at(1053)).goodput.wallSeconds, 53);
  ledger.resumed(at(1053));
  ledger.started(2, 50, at(1054));
  const { attemptHistory, goodput } = ledger.status(at(1060));
  assert.equal(attemptHistory![0]!.checkpointSeconds, 1);
  assert.deepEqual([goodput.wallSeconds, goodput.suspendedSeconds], [60, 1000]);
});

test("no two logged steps: no pace, so no productive time claimed; history bounded, totals not", () => {
  const r = attemptRecord({
    attempt: 1,
    start: at(0),
    end: at(9),
    outcome: { kind: "failed", reason: "TrainerFailed" },
    fromStep: 0,
    first: { step: 3, time: at(5) },
    last: { step: 3, time: at(5) },
    step: 3,
    previousEnd: at(0),
  });
  assert.deepEqual([r.stepsLost, r.productiveSeconds, r.resumeSeconds], [3, 0, 5]);

  const ledger = new GoodputLedger(freshGoodput(at(0)), at(0));
  for (let n = 1; n <= attemptHistoryLimit + 5; n++) {
    ledger.started(n, 0, at(n * 10));
    ledger.progress({ step: 2, time: at(n * 10 + 2), first: { step: 1, time: at(n * 10 + 1) } });
    ledger.ended({ kind: "failed", reason: "TrainerFailed" }, 2, undefined, at(n * 10 + 3));
  }
  const { attemptHistory, goodput } = ledger.status(at(300));
  assert.equal(attemptHistory!.length, attemptHistoryLimit);
  assert.equal(attemptHistory![0]!.attempt, 6);
  assert.equal(goodput.stepsLost, 2 * (attemptHistoryLimit + 5));
});

test("a recovered workflow takes its history and totals back from status", () => {
  const ledger = new GoodputLedger(freshGoodput(at(0)), at(0));
  ledger.started(1, 0, at(0));
  ledger.progress({ step: 10, time: at(10), first: { step: 1, time: at(1) } });
  ledger.ended({ kind: "preempted", reason: "NodeLost" }, 10, checkpoint(5, 6), at(12));
  const status = JSON.parse(JSON.stringify(ledger.status(at(20)))) as Record<string, unknown>;
  const back = new GoodputLedger(goodputOfStatus(status, at(0)), at(0));
  assert.deepEqual(back.status(at(20)), ledger.status(at(20)));
  assert.equal(back.state.previousEnd, at(12));
});
