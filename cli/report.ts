// `herd report`: one self-contained HTML page with a TrainingJob's loss curve and every eval
// metric against training tokens (docs/eval.md, "Report"). The job comes from the cluster
// (by name), from a manifest (-f) or straight from a checkpoint folder (--checkpoints).
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { group, version } from "../crds/common.ts";
import { ManifestError, readTrainingJob } from "../crds/manifest.ts";
import type { TrainingJob, TrainingJobStatus } from "../crds/trainingjob.ts";
import { checkpointFolder, StorageError } from "../workers/checkpoint-folder.ts";
import { s3ConfigFromEnv } from "../workers/trainer/checkpoint-store.ts";
import { gatherReport, ReportError, type CheckpointFiles } from "../workers/report/gather.ts";
import { renderReport, renderResultsPage } from "../workers/report/render.ts";
import { resultsTable } from "../workers/report/paper-table.ts";
import type { ResultsFile } from "../workers/eval/run.ts";
import type { GoodputData } from "../workers/report/goodput.ts";

const usage = `usage: herd report <TrainingJob name> [-n namespace] [-o out.html]
       herd report -f <TrainingJob manifest> [-o out.html]
       herd report --checkpoints <dir|s3://bucket/prefix> [--name title] [-o out.html]
       herd report --results <results.json> [--results …] [--name title] [-o out.html]
Writes <name>-report.html unless -o is given. By name, the job is read from the cluster
that KUBECONFIG (or ~/.kube/config) names.`;

// The TrainingJob's spec.checkpoint.uri, and its attempts and goodput, read from the cluster.
async function trainingJobFromCluster(
  name: string,
  namespace?: string,
): Promise<{ uri: string; goodput?: GoodputData }> {
  const { CustomObjectsApi, KubeConfig } = await import("@kubernetes/client-node");
  const { isNotFound } = await import("../workers/kube-errors.ts");
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const ns = namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
  let job: { spec?: { checkpoint?: { uri?: unknown } }; status?: TrainingJobStatus };
  try {
    job = (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural: "trainingjobs",
      name,
    })) as typeof job;
  } catch (err) {
    if (isNotFound(err)) throw new ReportError(`TrainingJob ${ns}/${name} not found`);
    throw new ReportError(
      `cannot read TrainingJob ${ns}/${name} from ${kc.getCurrentCluster()?.server ?? "the cluster"}: ${(err as Error).message}`,
    );
  }
  const uri = job.spec?.checkpoint?.uri;
  if (typeof uri !== "string")
    throw new ReportError(`TrainingJob ${ns}/${name} has no spec.checkpoint.uri`);
  const s = job.status;
  return {
    uri,
    ...(s?.goodput &&
      s.startTime && {
        goodput: { startTime: s.startTime, goodput: s.goodput, attempts: s.attemptHistory ?? [] },
      }),
  };
}

function readManifest(file: string): TrainingJob {
  try {
    return readTrainingJob(file);
  } catch (err) {
    if (err instanceof ManifestError) throw err;
    throw new ReportError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        file: { type: "string", short: "f" },
        checkpoints: { type: "string" },
        results: { type: "string", multiple: true },
        name: { type: "string" },
        namespace: { type: "string", short: "n" },
        out: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`herd report: ${(err as Error).message}\n${usage}`);
    return 64;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const sources = [positionals.length > 0, !!values.file, !!values.checkpoints, !!values.results];
  if (positionals.length > 1 || sources.filter(Boolean).length !== 1) {
    console.error(
      `herd report: give one of a TrainingJob name, -f <manifest>, --checkpoints <dir> or --results <file>\n${usage}`,
    );
    return 64;
  }
  if (values.results) return resultsReport(values.results, values.name, values.out);
  try {
    let name: string;
    let files: CheckpointFiles;
    let goodput: GoodputData | undefined;
    // s3:// folders are read with this process's endpoint and keys (`herd dev env`).
    const s3 = s3ConfigFromEnv();
    if (values.checkpoints) {
      files = checkpointFolder(values.checkpoints, { s3 });
      name = values.name ?? path.posix.basename(files.location);
    } else if (values.file) {
      const job = readManifest(values.file);
      name = job.metadata.name;
      const base = path.dirname(path.resolve(values.file));
      files = checkpointFolder(job.spec.checkpoint.uri, { base, s3 });
    } else {
      name = positionals[0]!;
      const job = await trainingJobFromCluster(name, values.namespace);
      files = checkpointFolder(job.uri, { s3 });
      goodput = job.goodput;
    }
    const data = { ...(await gatherReport(name, files)), ...(goodput && { goodput }) };
    const out = path.resolve(values.out ?? `${name}-report.html`);
    const tmp = `${out}.tmp-${process.pid}`;
    writeFileSync(tmp, renderReport(data));
    renameSync(tmp, out);
    console.log(
      `herd report: ${out} (${data.loss.length} steps, ${data.evals.length} eval charts)`,
    );
    for (const note of data.notes) console.error(`note: ${note}`);
    return 0;
  } catch (err) {
    if (err instanceof ReportError || err instanceof StorageError || err instanceof ManifestError) {
      console.error(`herd report: ${err.message}`);
      return 64;
    }
    throw err;
  }
}

/** `--results`: results files (herd eval --local --out) side by side, a row each. */
function resultsReport(files: string[], title = "eval results", out?: string): number {
  const rows: { label: string; results: ResultsFile }[] = [];
  for (const file of files) {
    let results: ResultsFile;
    try {
      results = JSON.parse(readFileSync(file, "utf8")) as ResultsFile;
    } catch (err) {
      console.error(`herd report: cannot read ${file}: ${(err as Error).message}`);
      return 64;
    }
    if (results.format !== "herd-eval-results") {
      console.error(`herd report: ${file} is not a herd results file (format ${results.format})`);
      return 64;
    }
    const step = results.checkpoint.step !== undefined ? ` step ${results.checkpoint.step}` : "";
    rows.push({
      label: `${path.basename(results.checkpoint.uri)}${step} (${results.job})`,
      results,
    });
  }
  const table = resultsTable(rows);
  const dest = path.resolve(out ?? "eval-report.html");
  const tmp = `${dest}.tmp-${process.pid}`;
  writeFileSync(tmp, renderResultsPage(title, table));
  renameSync(tmp, dest);
  console.log(`herd report: ${dest} (${rows.length} rows, ${table.columns.length} tasks)`);
  return 0;
}
