// The engine's tensor sets as checkpoint files and back, streamed: a set's buffer in the engine
// is the data section of its safetensors file as it is (the tensors follow each other in
// checkpoint order, Trainer.layout()), so a file is its header and then the buffer, copied
// out of or into the engine one 16 MiB chunk at a time. No file, and no whole tensor, is held
// in JavaScript: a Node Buffer stops at 2 GiB for reads and 4 GiB for allocations, which
// models from about 270M parameters passed.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import path from "node:path";
import type { StateSet, Trainer } from "../../native/engine.ts";
import {
  CheckpointError,
  chunkBytes,
  type StreamedFile,
  type VerifiedFiles,
} from "./checkpoint.ts";
import {
  parseSafetensorsHeader,
  safetensorsHeader,
  safetensorsHeaderLength,
  type SafetensorsLayout,
} from "./safetensors.ts";

/** Where a checkpoint's tensors are read from: the trainer, or its snapshot (snapshotSource). */
export type TensorSource = Pick<Trainer, "layout" | "readSet">;

/** A trainer's snapshot (Trainer.snapshot()) as a TensorSource, readable while it trains. */
export const snapshotSource = (trainer: Trainer): TensorSource => ({
  layout: (set) => trainer.layout(set),
  readSet: (set, offset, into) => trainer.readSnapshot(set as StateSet, offset, into),
});

/** Tensor sets of a safetensors file, each under a name prefix: "m." and "v." in optimizer.safetensors. */
export type FileSets = { set: StateSet; prefix: string }[];
export const modelSets: FileSets = [{ set: "params", prefix: "" }];
export const optimizerSets: FileSets = [
  { set: "m", prefix: "m." },
  { set: "v", prefix: "v." },
];
/** LoRA's lora.safetensors: the adapters, and the frozen weights they adapt under "base.". */
export const loraSets: FileSets = [
  { set: "lora", prefix: "" },
  { set: "base", prefix: "base." },
];

/**
 * A trainer's checkpoint files of tensors: model.safetensors (the weights, merged with LoRA's
 * update: what evaluators and converters read) and optimizer.safetensors; with LoRA, m and v
 * are the adapters' and lora.safetensors is added.
 */
export function checkpointTensorFiles(trainer: Pick<Trainer, "lora">): TensorFile[] {
  return [
    { name: "model.safetensors", kind: "model", sets: modelSets },
    { name: "optimizer.safetensors", kind: "adamw", sets: optimizerSets },
    ...(trainer.lora() ? [{ name: "lora.safetensors", kind: "lora", sets: loraSets }] : []),
  ];
}
/** kind: the file's metadata "kind" (model, adamw, lora). */
export type TensorFile = { name: string; kind: string; sets: FileSets };

/**
 * A safetensors file of the engine's sets, streamed: the header, then each set's buffer (which
 * is the file's data section, layout() says) copied out of the engine a chunk at a time.
 */
export function engineSafetensors(
  trainer: TensorSource,
  sets: FileSets,
  metadata: Record<string, string>,
  chunkElements = chunkBytes / 4,
): StreamedFile {
  const laidOut = sets.map((s) => ({ ...s, layout: trainer.layout(s.set) }));
  return {
    *chunks() {
      yield safetensorsHeader(
        laidOut.flatMap((s) => s.layout.map((t) => ({ name: s.prefix + t.name, shape: t.shape }))),
        metadata,
      );
      const chunk = new Float32Array(chunkElements);
      for (const { set, layout } of laidOut) {
        const total = layout.reduce((n, t) => n + t.size, 0);
        for (let at = 0; at < total; at += chunk.length) {
          const part = chunk.subarray(0, Math.min(chunk.length, total - at));
          trainer.readSet(set, at, part);
          yield new Uint8Array(part.buffer, 0, part.byteLength);
        }
      }
    },
  };
}

/** A safetensors file's header, read from its start (the data is not read), checked. */
export function readSafetensorsLayout(file: string, name: string): SafetensorsLayout {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const first8 = Buffer.alloc(8);
    readSync(fd, first8, 0, 8, 0);
    const headerBytes = Buffer.alloc(safetensorsHeaderLength(first8, size, name));
    readSync(fd, headerBytes, 0, headerBytes.length, 8);
    return parseSafetensorsHeader(headerBytes, size, name);
  } finally {
    closeSync(fd);
  }
}

/** Where each tensor of `sets` lies in a file of that header, checked against the trainer's layouts. */
export function tensorPlaces(
  header: SafetensorsLayout,
  name: string,
  trainer: Pick<Trainer, "layout">,
  sets: FileSets,
) {
  const byName = new Map(header.entries.map((e) => [e.name, e]));
  return sets.map(({ set, prefix }) => ({
    set,
    tensors: trainer.layout(set).map((t) => {
      const e = byName.get(prefix + t.name);
      if (!e) throw new CheckpointError(`${name}: tensor ${prefix}${t.name} is missing`);
      if (e.shape.join(",") !== t.shape.join(","))
        throw new CheckpointError(
          `${name}: tensor ${prefix}${t.name} has shape [${e.shape}], the model needs [${t.shape}]`,
        );
      return { offset: t.offset, at: header.dataStart + e.begin, bytes: e.end - e.begin };
    }),
  }));
}

/** Reads tensors from a file into the engine's sets, a chunk at a time. */
export function streamIn(
  trainer: Trainer,
  file: string,
  places: ReturnType<typeof tensorPlaces>,
  chunkElements = chunkBytes / 4,
) {
  const chunk = new Float32Array(chunkElements);
  const bytes = new Uint8Array(chunk.buffer);
  const fd = openSync(file, "r");
  try {
    for (const { set, tensors } of places)
      for (const t of tensors)
        for (let done = 0; done < t.bytes;) {
          const n = Math.min(bytes.length, t.bytes - done);
          let got = 0;
          while (got < n) {
            const r = readSync(fd, bytes, got, n - got, t.at + done + got);
            if (r === 0) throw new CheckpointError(`${path.basename(file)}: ends early`);
            got += r;
          }
          trainer.writeSet(set, t.offset + done / 4, chunk.subarray(0, n / 4));
          done += n;
        }
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks a verified checkpoint's tensor files (checkpointTensorFiles) against the trainer's
 * sets (headers only: every tensor there, with its shape; throws CheckpointError or
 * SafetensorsError naming what is wrong), and returns the function that streams them in.
 */
export function engineCheckpointReader(
  files: Pick<VerifiedFiles, "path">,
  trainer: Trainer,
  chunkElements = chunkBytes / 4,
): () => void {
  const reads = checkpointTensorFiles(trainer).map(({ name, sets }) => {
    const file = files.path(name);
    return { file, places: tensorPlaces(readSafetensorsLayout(file, name), name, trainer, sets) };
  });
  return () => {
    for (const r of reads) streamIn(trainer, r.file, r.places, chunkElements);
  };
}
