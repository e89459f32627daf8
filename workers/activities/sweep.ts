// The EvalSweep activities: the sweep's Temporal Schedule (created, updated to the spec,
// paused, deleted), and what each scheduled run does: find the TrainingJob's checkpoints
// without results of this sweep, create one EvalJob per checkpoint step (a name per step, so
// a repeated run finds the one there), and wait for it.
import { heartbeat, sleep as activitySleep } from "@temporalio/activity";
import {
  Client,
  Connection,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  type ScheduleOptionsAction,
  type ScheduleOverlapPolicy,
  type ScheduleSpec,
} from "@temporalio/client";
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { apiVersion, group, version } from "../../crds/common.ts";
import type { EvalJobStatus } from "../../crds/evaljob.ts";
import type { EvalSweepSpec } from "../../crds/evalsweep.ts";
import { durationSeconds } from "../../crds/schedule.ts";
import type { ObjectRef } from "../../workflows/types.ts";
import {
  evalLabels,
  scheduleIdOf,
  sweepAttemptAnnotation,
  sweepEvalJobName,
  type SweepActivities,
  type SweepHistoryEntry,
  type SweepRunInput,
} from "../../workflows/eval-types.ts";
import { durableCheckpoints, hasResults } from "../eval/checkpoints.ts";
import { readTrainingJob } from "./eval.ts";
import type { ObjectStorage } from "./training.ts";
import { temporalConnectionOptions } from "../temporal-tls.ts";
import { createOwned } from "./names.ts";
import { isNotFound, rejectionFailure } from "../kube-errors.ts";

/** The spec's overlap policy in Temporal's words. */
const overlapOf: Record<EvalSweepSpec["overlapPolicy"], ScheduleOverlapPolicy> = {
  Skip: "SKIP",
  BufferOne: "BUFFER_ONE",
  BufferAll: "BUFFER_ALL",
  CancelOther: "CANCEL_OTHER",
  TerminateOther: "TERMINATE_OTHER",
  AllowAll: "ALLOW_ALL",
};

/** When the Schedule fires: the spec's cron expression (UTC) or interval. */
export function scheduleSpecOf(s: EvalSweepSpec): ScheduleSpec {
  if (s.schedule.cron) return { cronExpressions: [s.schedule.cron] };
  return { intervals: [{ every: durationSeconds(s.schedule.interval!) * 1000 }] };
}

export interface SweepActivityOptions {
  temporalAddress: string;
  temporalNamespace: string;
  /** Object storage, for TrainingJobs that checkpoint to s3://. */
  s3?: ObjectStorage;
  /** Where the Temporal TLS settings are read (workers/temporal-tls.ts); process.env if unset. */
  env?: NodeJS.ProcessEnv;
}

type EvalJobRef = { group: string; version: string; namespace: string; plural: string };
type EvalJobObject = {
  metadata?: { annotations?: Record<string, string> };
  status?: EvalJobStatus;
};

export function sweepActivities(kc: KubeConfig, opts: SweepActivityOptions): SweepActivities {
  const custom = kc.makeApiClient(CustomObjectsApi);

  const readEvalJob = async (ref: EvalJobRef, name: string) => {
    try {
      return (await custom.getNamespacedCustomObject({ ...ref, name })) as EvalJobObject;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };

  /** Deletes an EvalJob and waits until it is gone (its finalizer ends its workflow first). */
  const deleteAndWait = async (ref: EvalJobRef, name: string) => {
    try {
      await custom.deleteNamespacedCustomObject({ ...ref, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    while (await readEvalJob(ref, name)) {
      heartbeat("deleting the failed EvalJob");
      await activitySleep(500);
    }
  };
  let client: Promise<Client> | undefined;
  const temporal = () =>
    (client ??= Connection.connect(temporalConnectionOptions(opts.temporalAddress, opts.env)).then(
      (connection) => new Client({ connection, namespace: opts.temporalNamespace }),
    ));

  const nextRun = async (scheduleId: string): Promise<string | undefined> => {
    try {
      const d = await (await temporal()).schedule.getHandle(scheduleId).describe();
      return d.state.paused ? undefined : d.info.nextActionTimes[0]?.toISOString();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return undefined;
      throw err;
    }
  };

  return {
    async upsertSchedule({ object, spec, workflowId, taskQueue }) {
      const s = spec as unknown as EvalSweepSpec;
      const schedules = (await temporal()).schedule;
      const scheduleId = scheduleIdOf(object);
      const input: SweepRunInput = { sweep: object, sweepWorkflowId: workflowId, spec };
      const action: ScheduleOptionsAction = {
        type: "startWorkflow",
        workflowType: "evalSweepRunWorkflow",
        // Temporal appends each run's scheduled time: one id per run, never two runs per time.
        workflowId: `${workflowId}/run`,
        taskQueue,
        args: [input],
      };
      const policies = {
        overlap: overlapOf[s.overlapPolicy],
        catchupWindow: durationSeconds(s.catchupWindow) * 1000,
      };
      const state = {
        paused: s.suspend,
        note: s.suspend ? "spec.suspend is true" : "active",
      };
      try {
        await schedules.create({
          scheduleId,
          spec: scheduleSpecOf(s),
          action,
          policies,
          state,
        });
      } catch (err) {
        // The sweep's workflow ran this before (a retry, a continuation): bring it up to date.
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
        await schedules
          .getHandle(scheduleId)
          .update(() => ({ spec: scheduleSpecOf(s), action, policies, state }));
      }
      const next = await nextRun(scheduleId);
      return { scheduleId, ...(next && { nextRunTime: next }) };
    },

    nextRunTime: (object: ObjectRef) => nextRun(scheduleIdOf(object)),

    async deleteSchedule(object: ObjectRef) {
      try {
        await (await temporal()).schedule.getHandle(scheduleIdOf(object)).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
    },

    async pendingSteps({ sweep, spec }) {
      const s = spec as unknown as EvalSweepSpec;
      const job = await readTrainingJob(kc, sweep.namespace, s.trainingJob.name);
      if (!job) return []; // nothing to evaluate until the TrainingJob exists
      const storage = { s3: opts.s3?.config };
      const all = await durableCheckpoints(job.checkpoint.uri, storage);
      const candidates = s.checkpoints === "latest" ? all.slice(-1) : all;
      const pending: number[] = [];
      for (const c of candidates)
        if (!(await hasResults(c.uri, sweepEvalJobName(sweep.name, c.step), storage)))
          pending.push(c.step);
      return pending;
    },

    async ensureEvalJob({ sweep, spec, step }) {
      const s = spec as unknown as EvalSweepSpec;
      const name = sweepEvalJobName(sweep.name, step);
      const ref = { group, version, namespace: sweep.namespace, plural: "evaljobs" };
      // A failed EvalJob is created again while retries last; then the checkpoint is given up.
      const existing = await readEvalJob(ref, name);
      let attempt = 1;
      if (existing?.status?.phase === "Failed") {
        const failed = Number(existing.metadata?.annotations?.[sweepAttemptAnnotation] ?? "1");
        if (failed > s.retries)
          throw rejectionFailure({
            reason: "RetriesExhausted",
            message: `EvalJob ${name} failed ${failed} time(s) (${existing.status.message ?? "no message"}); spec.retries is ${s.retries}, so step ${step} is not evaluated again: delete the EvalJob to try once more`,
            waits: false,
          });
        await deleteAndWait(ref, name);
        attempt = failed + 1;
      }
      const body = {
        apiVersion,
        kind: "EvalJob",
        metadata: {
          name,
          namespace: sweep.namespace,
          labels: { ...s.template.metadata?.labels, [evalLabels.sweep]: sweep.name.slice(0, 63) },
          annotations: {
            ...s.template.metadata?.annotations,
            [sweepAttemptAnnotation]: String(attempt),
          },
          // Deleting the sweep deletes its EvalJobs; their results files stay.
          ownerReferences: [
            { apiVersion, kind: "EvalSweep", name: sweep.name, uid: sweep.uid, controller: true },
          ],
        },
        spec: {
          ...s.template.spec,
          checkpoint: { trainingJob: { name: s.trainingJob.name, step }, format: "herd" },
        },
      };
      await createOwned(
        `EvalJob ${sweep.namespace}/${name}`,
        sweep,
        () => custom.createNamespacedCustomObject({ ...ref, body }),
        () => custom.getNamespacedCustomObject({ ...ref, name }) as Promise<typeof body>,
      );
      return name;
    },

    async awaitEvalJob({ namespace, name }) {
      for (;;) {
        let o: { status?: EvalJobStatus };
        try {
          o = (await custom.getNamespacedCustomObject({
            group,
            version,
            namespace,
            plural: "evaljobs",
            name,
          })) as { status?: EvalJobStatus };
        } catch (err) {
          if (isNotFound(err)) return { failed: `EvalJob ${name} was deleted` };
          throw err;
        }
        const st = o.status;
        if (st?.phase === "Failed") return { failed: `EvalJob ${name}: ${st.message ?? ""}` };
        if (st?.phase === "Succeeded" && st.checkpoint?.step !== undefined) {
          const entry: SweepHistoryEntry = {
            step: st.checkpoint.step,
            ...(st.checkpoint.tokensSeen !== undefined && { tokensSeen: st.checkpoint.tokensSeen }),
            evalJob: name,
            time: st.completionTime ?? new Date().toISOString(),
            metrics: (st.results ?? []).flatMap((t) =>
              t.metrics.map((m) => ({
                task: t.task,
                metric: m.name,
                value: m.value,
                ...(m.stderr !== undefined && { stderr: m.stderr }),
              })),
            ),
          };
          return { entry };
        }
        heartbeat(st?.phase ?? "created");
        await activitySleep(1000);
      }
    },
  };
}
