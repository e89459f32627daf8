// The trainer: a TrainingJob's spec → the native engine's training loop, with durable
// checkpoints, exact resume and a graceful stop on SIGTERM. `herd train --local` runs it on
// this machine; the trainer pod's entry point runs the same loop. With HERD_WORLD_SIZE > 1
// the process is one rank of a data-parallel group (distributedFromEnv): each rank trains on
// its share of every global batch, gradients are averaged, rank 0 alone writes checkpoints.
import path from "node:path";
import { ManifestError, readTrainingJob } from "../../crds/manifest.ts";
import type { TrainingJob } from "../../crds/trainingjob.ts";
import { engine, type Group, type Trainer } from "../../native/engine.ts";
import { stepName } from "./checkpoint.ts";
import { snapshotSource } from "./engine-checkpoint.ts";
import { StaleAttemptError, type Owner } from "./checkpoint-store.ts";
import { MetricsLog } from "./metrics-log.ts";
import { jsonLogger, progressLogger, type Logger } from "./train-log.ts";
import { parseEndpoint, resolveHost } from "./rendezvous.ts";
import {
  defaultRendezvousPort,
  exitCodes,
  UserError,
  type Distributed,
  type TrainOptions,
} from "./options.ts";
import { checkpointStore, plan, resolveData, resolvePretrained, type Plan } from "./plan.ts";
import { checkpointContents, createAndResume, shardsState } from "./resume.ts";

// ---- the loop ------------------------------------------------------------------------------

/** Trains the job; returns the exit code (see exitCodes). */
export async function train(options: TrainOptions): Promise<number> {
  let log: Logger = jsonLogger();
  try {
    let job: TrainingJob;
    const unknown: string[] = [];
    try {
      job = readTrainingJob(options.manifest, (m) => unknown.push(m));
    } catch (err) {
      if (err instanceof ManifestError) throw new UserError(err.message);
      throw new UserError(`cannot read ${options.manifest}: ${(err as Error).message}`);
    }
    let p: Plan;
    try {
      const dir = path.dirname(path.resolve(options.manifest));
      const pretrained = await resolvePretrained(job, dir, options);
      const data = await resolveData(job, dir, pretrained?.resumesFrom !== undefined);
      p = plan(job, dir, options, data, pretrained);
      p.warnings.unshift(...unknown);
    } catch (err) {
      if (err instanceof ManifestError) throw new UserError(err.message);
      throw err;
    }
    const useBar =
      options.log === "progress" || (options.log === undefined && process.stderr.isTTY);
    if (useBar) log = progressLogger(p.stopAt);
    return await run(p, log, options.distributed, options.owner);
  } catch (err) {
    log.end();
    if (err instanceof StaleAttemptError) {
      log.warn(err.message);
      console.error(`herd train: ${err.message}`);
      return exitCodes.preempted;
    }
    if (err instanceof UserError) {
      log.warn(`error: ${err.message}`);
      console.error(`herd train: ${err.message}`);
      return exitCodes.userError;
    }
    throw err;
  }
}

async function run(
  p: Plan,
  log: Logger,
  dist: Distributed | undefined,
  owner: Owner | undefined,
): Promise<number> {
  // From here on SIGTERM/SIGINT ask for a stop: the step in flight (if any) runs to its end,
  // a checkpoint is written, and the process exits 75. In a group the ranks agree on the step
  // to stop after (the stop request rides on the next step's all-reduce), so rank 0's
  // checkpoint is of a step every rank finished, and every rank exits 75.
  let stopSignal: NodeJS.Signals | undefined;
  let inFlight: number | undefined;
  let onStop = () => {};
  const stopRequested = new Promise<void>((resolve) => (onStop = resolve));
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopSignal) return;
    stopSignal = sig;
    onStop();
    log.info(
      inFlight === undefined
        ? `${sig}: stopping; writing a checkpoint`
        : `${sig} during step ${inFlight}: finishing it, then writing a checkpoint` +
            (dist ? " (all ranks stop after the next step)" : ""),
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    for (const w of p.warnings) log.warn(w);
    let group: Group | undefined;
    if (dist) {
      // Nothing is trained yet: a stop while waiting for the other ranks needs no checkpoint.
      const joined = await Promise.race([joinGroup(dist, log), stopRequested.then(() => "stop")]);
      if (joined === "stop") return exitCodes.preempted;
      group = joined as Group;
    }
    const store = checkpointStore(p.checkpointUri);
    // The writer claims the folder before it reads it, so an older attempt still running
    // somewhere stops at its next checkpoint rather than publish over this one's.
    if (owner && (dist?.rank ?? 0) === 0) await store.claim(owner);
    const trainer = await createAndResume(p, store, log, group);
    const tokensPerStep = p.trainer.seqLen * p.trainer.microBatch * p.trainer.accumSteps * p.world;
    let step = trainer.state().step;
    if (group) await agreeOnStartStep(group, step);
    // Every rank holds the same weights and logs the same loss; rank 0 alone writes them.
    const writesCheckpoints = (dist?.rank ?? 0) === 0;
    let lastSaved = step;
    const metrics = writesCheckpoints
      ? MetricsLog.open(store.localDir, step, (msg) => log.warn(msg))
      : undefined;
    // A periodic checkpoint (`background`) is written from a snapshot of the state while the
    // next steps run: the stall is the snapshot's copy. One is written at a time, in order; a
    // failure (a newer attempt owns the folder, a full disk) surfaces at the next step.
    let writing: Promise<void> | undefined;
    let writeFailed: unknown;
    const save = async (background: boolean): Promise<void> => {
      lastSaved = step;
      if (!writesCheckpoints) {
        // Sharded, the device's state is gathered from every rank: the others take part too
        // (the writer's tensors() below does its part); unsharded they copy nothing.
        if (shardsState(p)) trainer.syncHost();
        return;
      }
      await writing;
      if (writeFailed) throw writeFailed;
      metrics?.sync(); // the log covers every step of the checkpoint before it is published
      const at = step;
      const t0 = performance.now();
      const snapshot = background && p.asynchronous ? takeSnapshot(trainer, log) : false;
      const stallSeconds = (performance.now() - t0) / 1000;
      const contents = checkpointContents(trainer, p, snapshot ? snapshotSource(trainer) : trainer);
      const write = async () => {
        if (snapshot) await new Promise(setImmediate); // the next step starts first
        try {
          const where = await store.save(at, contents, p.keep);
          const seconds = (performance.now() - t0) / 1000;
          log.info(`checkpoint ${stepName(at)} written`, {
            event: "checkpoint",
            step: at,
            path: where,
            seconds,
            ...(snapshot && { stallSeconds }),
          });
        } finally {
          if (snapshot) trainer.releaseSnapshot();
        }
      };
      if (!snapshot) return write();
      writing = write().catch((err: unknown) => {
        writeFailed = err;
      });
    };
    const started = performance.now();
    const startStep = step;
    if (step === 0) lastSaved = -1; // a fresh run always ends with a checkpoint
    let agreedToStop = false;
    while (step < p.stopAt && !agreedToStop) {
      if (writeFailed) throw writeFailed;
      if (stopSignal && !group) break;
      inFlight = step + 1;
      const r = await trainer.step(stopSignal !== undefined);
      inFlight = undefined;
      step++;
      agreedToStop = r.stop;
      const perStep = (performance.now() - started) / 1000 / (step - startStep);
      const done = { step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm };
      const tokensPerSecond = tokensPerStep / perStep;
      log.step({ ...done, tokensPerSecond, etaSeconds: perStep * (p.stopAt - step) });
      const { tokens } = trainer.state();
      metrics?.append({ ...done, tokens, tokensPerSecond, time: new Date().toISOString() });
      if (step % p.intervalSteps === 0) await save(step < p.stopAt && !agreedToStop && !stopSignal);
    }
    if (lastSaved !== step) await save(false);
    await writing;
    if (writeFailed) throw writeFailed;
    await store.flush(); // the last checkpoint is published before the exit code says done
    metrics?.close();
    log.end();
    if (stopSignal || agreedToStop) {
      const why = stopSignal ?? "another rank's stop";
      log.info(`stopped by ${why} at step ${step}; exit ${exitCodes.preempted} (preempted)`);
      return exitCodes.preempted;
    }
    log.info(`done: step ${step} of ${p.totalSteps}; checkpoints in ${p.checkpointUri}`, {
      step,
      checkpoints: p.checkpointUri,
    });
    return exitCodes.ok;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

// A snapshot of the trainer's state for a background checkpoint; false (write in the
// foreground) when the host has no memory for the copy.
function takeSnapshot(trainer: Trainer, log: Logger): boolean {
  try {
    trainer.snapshot();
    return true;
  } catch (err) {
    log.warn(`checkpoint written with training paused: ${(err as Error).message}`);
    return false;
  }
}

// Joins the data-parallel group: rank 0 serves the rendezvous store, the others find it.
async function joinGroup(dist: Distributed, log: Logger): Promise<Group> {
  const store = parseEndpoint(dist.rendezvous, defaultRendezvousPort, "HERD_RENDEZVOUS");
  const timeoutMs = dist.timeoutSeconds * 1000;
  const host = dist.rank === 0 ? store.host : await resolveHost(store.host, timeoutMs);
  log.info(`rank ${dist.rank} of ${dist.world}: joining the group at ${dist.rendezvous}`);
  const group = await engine.joinGroup({
    rank: dist.rank,
    world: dist.world,
    host,
    port: store.port,
    bindHost: dist.bindHost,
    timeoutMs,
  });
  log.info(`rank ${dist.rank} of ${dist.world}: joined`);
  return group;
}

/**
 * Every rank must resume from the same checkpoint (they read one folder, which rank 0
 * writes); a rank that sees another step would silently train other weights. Each rank puts
 * its step at its own slot (as two floats below 2^20, exact) and the sum shows all of them.
 */
async function agreeOnStartStep(group: Group, step: number): Promise<void> {
  const slots = new Float32Array(2 * group.world);
  slots[2 * group.rank] = Math.floor(step / 2 ** 20);
  slots[2 * group.rank + 1] = step % 2 ** 20;
  const all = await group.allReduceSum(slots);
  const steps = Array.from(
    { length: group.world },
    (_, r) => all[2 * r]! * 2 ** 20 + all[2 * r + 1]!,
  );
  if (steps.some((s) => s !== steps[0]))
    throw new Error(
      `the ranks resumed from different checkpoints (${steps.map((s, r) => `rank ${r} at step ${s}`).join(", ")}): ` +
        "every rank must see the checkpoints rank 0 writes",
    );
}
