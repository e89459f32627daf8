// herd's registry of evaluation tasks (data/eval/tasks.yaml), and how an EvalJob's task list
// becomes the tasks that run: groups expanded, registry names given their definition and
// data, custom definitions (inline or from a file) checked, every problem named.
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import {
  taskDefinitionChecked as taskDefinition,
  type EvalTask,
  type TaskDefinition,
} from "../../crds/evaltask.ts";
import { TaskError } from "./tasks.ts";

/** Where the registry's data files live, in a checkout and in herd's image alike. */
export const evalDataDir = path.resolve(import.meta.dirname, "../../data/eval");

const registryFile = z.object({
  tasks: z.record(z.string().regex(/^[a-z0-9_]+$/), taskDefinition),
  groups: z.record(z.string(), z.array(z.string()).min(1)),
});

export type Registry = z.infer<typeof registryFile>;

let loaded: Registry | undefined;

/** The registry, read and checked once: a task without data, or a group naming an unknown task, is an error here. */
export function registry(): Registry {
  if (loaded) return loaded;
  const file = path.join(evalDataDir, "tasks.yaml");
  const r = registryFile.safeParse(parse(readFileSync(file, "utf8")));
  if (!r.success) throw new TaskError(`${file}: ${z.prettifyError(r.error)}`);
  for (const [name, d] of Object.entries(r.data.tasks))
    if (!d.data) throw new TaskError(`${file}: task ${name} has no data`);
  for (const [group, names] of Object.entries(r.data.groups))
    for (const n of names)
      if (!r.data.tasks[n]) throw new TaskError(`${file}: group ${group} names unknown task ${n}`);
  loaded = r.data;
  return loaded;
}

/** A definition file (definitionUri): YAML holding one task definition. */
export function readDefinition(file: string): TaskDefinition {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new TaskError(`${file}: ${(err as Error).message}`);
  }
  const r = taskDefinition.safeParse(raw);
  if (!r.success) throw new TaskError(`${file}: ${z.prettifyError(r.error)}`);
  return r.data;
}

/** The job's tasks with each registry group replaced by its tasks (the group's settings kept). */
export function expandGroups(tasks: EvalTask[]): EvalTask[] {
  const { groups } = registry();
  const out = tasks.flatMap((t) => {
    const members = !t.uri && !t.definition && !t.definitionUri ? groups[t.name] : undefined;
    return members ? members.map((name) => ({ ...t, name })) : [t];
  });
  const seen = new Set<string>();
  for (const t of out) {
    if (seen.has(t.name)) throw new TaskError(`task ${t.name} is listed twice (through a group)`);
    seen.add(t.name);
  }
  return out;
}

/** A task as it runs: its type, data, definition (none: herd's own JSONL) and settings. */
export interface RunnableTask {
  name: string;
  type: "multipleChoice" | "perplexity" | "chat";
  /** The data, as the job or the registry names it (a path here, or s3://). */
  uri: string;
  definition?: TaskDefinition;
  /** A registry task's few-shot file, when not its data. */
  fewShotUri?: string;
  numFewShot: number;
  limit?: number;
  seed: number;
}

const registryPath = (file: string) =>
  file.startsWith("s3://") || path.isAbsolute(file) ? file : path.join(evalDataDir, file);

/**
 * What runs for one task of the job. `fileDefinition` is the parsed definitionUri, if any.
 * A task with neither uri nor definition must be a registry task.
 */
export function runnableTask(t: EvalTask, fileDefinition?: TaskDefinition): RunnableTask {
  const settings = { name: t.name, limit: t.limit, seed: t.seed };
  const custom = t.definition ?? fileDefinition;
  if (custom) {
    const uri = t.uri ?? custom.data;
    if (!uri) throw new TaskError(`task ${t.name}: its definition has no data; give uri`);
    return {
      ...settings,
      type: "multipleChoice",
      uri,
      definition: custom,
      ...(custom.fewShot?.data && { fewShotUri: custom.fewShot.data }),
      numFewShot: t.numFewShot ?? custom.numFewShot,
    };
  }
  if (t.uri)
    return {
      ...settings,
      type: t.type ?? "multipleChoice",
      uri: t.uri,
      numFewShot: t.numFewShot ?? 0,
    };
  const d = registry().tasks[t.name];
  if (!d)
    throw new TaskError(
      `task ${t.name}: no uri, and herd's registry has no such task or group (tasks: ${Object.keys(registry().tasks).join(", ")}; groups: ${Object.keys(registry().groups).join(", ")})`,
    );
  if (t.type === "perplexity" || t.type === "chat")
    throw new TaskError(`task ${t.name}: a registry task is multipleChoice`);
  return {
    ...settings,
    type: "multipleChoice",
    uri: registryPath(d.data!),
    definition: d,
    ...(d.fewShot?.data && { fewShotUri: registryPath(d.fewShot.data) }),
    numFewShot: t.numFewShot ?? d.numFewShot,
  };
}
