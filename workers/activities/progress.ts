// A training attempt's progress, read by the worker from rank 0's log. The trainer writes one
// JSON line per step and per durable checkpoint (`herd train --log json`, which the trainer
// pod relays to its stdout); the watch activity reads the newest of them at a fixed interval
// and hands them to the workflow in its result. So progress costs the workflow's history a
// bounded number of events per interval, however often the trainer steps, and trainer pods
// need no connection to Temporal at all.
import type { RankProgress } from "../../workflows/training-types.ts";

/** The newest step and checkpoint a trainer's JSON log tells; undefined when it tells none. */
export function progressOfLog(log: string): RankProgress | undefined {
  let found: RankProgress | undefined;
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line of other output that happens to start with a brace
    }
    if (typeof e.step !== "number") continue;
    const time = typeof e.time === "string" ? e.time : undefined;
    if (e.event === "step" && e.step >= (found?.step ?? -1))
      found = {
        ...found,
        first: found?.first ?? (time ? { step: e.step, time } : undefined),
        step: e.step,
        time,
        loss: e.loss as number | undefined,
        learningRate: e.lr as number | undefined,
        tokensPerSecond: e.tokensPerSecond as number | undefined,
      };
    else if (e.event === "checkpoint" && e.step >= (found?.checkpoint?.step ?? -1))
      found = {
        ...found,
        step: Math.max(found?.step ?? 0, e.step),
        checkpoint: { step: e.step, uri: String(e.path), time: String(e.time) },
      };
  }
  return found;
}

/** True when `next` tells the workflow something it has not been told (`told`). */
export function isNewer(next: RankProgress, told: RankProgress | undefined): boolean {
  if (!told) return true;
  return next.step > told.step || (next.checkpoint?.step ?? -1) > (told.checkpoint?.step ?? -1);
}
