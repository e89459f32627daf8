// spec.model.from: the pretrained model a fine-tuning job starts from. Its architecture
// becomes the job's model; its weights are the initial ones. Once the job has a checkpoint,
// the initial model is not read again: the architecture comes from the newest checkpoint's
// trainer.json, and the weights from the checkpoint itself (docs/fine-tuning.md).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../../crds/model.ts";
import type { PretrainedSource } from "../../crds/trainingjob.ts";
import { readModel, type LoadedModel, type ModelFormat } from "../model/formats.ts";
import { downloadUri, parseS3Uri, S3 } from "../s3.ts";
import { latestPublished, s3ConfigFromEnv } from "./checkpoint-store.ts";

export interface Pretrained {
  uri: string;
  /** The architecture (the newest checkpoint's when the job has one; the same model). */
  config: ModelConfig;
  /** The step the job resumes from, when it has a published checkpoint. */
  resumesFrom?: number;
  /**
   * The initial weights (an s3:// model downloaded into the cache first). The copy read to
   * learn the architecture is returned by the first call and then dropped.
   */
  load(): Promise<LoadedModel>;
}

const formats: Record<PretrainedSource["format"], ModelFormat | "auto"> = {
  auto: "auto",
  herd: "herd",
  safetensors: "hf",
  gguf: "gguf",
};

/**
 * The job's pretrained model. `checkpointUri` is the job's checkpoint location: when it has a
 * published checkpoint, only that checkpoint's trainer.json is read here.
 */
export async function openPretrained(
  from: PretrainedSource,
  local: (uri: string) => string,
  checkpointUri: string,
  cacheDir: string,
  fail: (message: string) => Error,
): Promise<Pretrained> {
  const s3 = s3ConfigFromEnv();
  const where = `spec.model.from.uri (${from.uri})`;
  const load = async (): Promise<LoadedModel> => {
    let file: string;
    if (from.uri.startsWith("s3://")) {
      if (!s3) throw fail(`${where}: object storage is not configured (HERD_S3_ENDPOINT)`);
      const key = createHash("sha256").update(from.uri).digest("hex").slice(0, 16);
      file = path.join(cacheDir, `pretrained-${key}`, path.basename(parseS3Uri(from.uri).key));
      if (!existsSync(file)) await downloadUri(from.uri, s3, file);
    } else {
      file = local(from.uri);
    }
    try {
      return readModel(file, formats[from.format]);
    } catch (err) {
      throw fail(`${where}: ${(err as Error).message}`);
    }
  };

  const published = await latestPublished(checkpointUri, s3).catch(() => undefined);
  if (published) {
    const state = await readTrainerState(published.uri, s3);
    if (state?.model)
      return { uri: from.uri, config: state.model, resumesFrom: published.step, load };
  }
  // The model read here is handed over once: the plan must not keep a second copy of the
  // weights alive for the whole run once the trainer holds them.
  let model: LoadedModel | undefined = await load();
  const config = model.config;
  const handOver = async () => {
    const m = model ?? (await load());
    model = undefined;
    return m;
  };
  return { uri: from.uri, config, load: handOver };
}

// The trainer.json of a published checkpoint (a folder or s3://bucket/prefix/step-N).
async function readTrainerState(
  uri: string,
  s3: ReturnType<typeof s3ConfigFromEnv>,
): Promise<{ model?: ModelConfig } | undefined> {
  try {
    if (!uri.startsWith("s3://"))
      return JSON.parse(readFileSync(path.join(uri, "trainer.json"), "utf8")) as {
        model?: ModelConfig;
      };
    if (!s3) return undefined;
    const { bucket, key } = parseS3Uri(uri);
    const body = await new S3({ ...s3, bucket }).get(`${key.replace(/\/+$/, "")}/trainer.json`);
    return JSON.parse(body.toString("utf8")) as { model?: ModelConfig };
  } catch {
    return undefined; // unreadable: the model is read instead, and the resume reports the rest
  }
}
